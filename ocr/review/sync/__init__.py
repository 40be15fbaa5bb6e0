"""Offline offices, then sync (issue 21): a TPS or kecamatan laptop reads and reviews on its own SQLite, exports what
changed as a signed bundle, and the centre merges it into its database: nothing twice, nothing lost, never an overwrite.

`keys.py`: an office's Ed25519 key and the keys the centre trusts. `bundle.py`: the bundle file (a zip: a manifest of
every member's sha256, signed with the office's key in the zip's comment) written and opened, or refused with a reason.
`content.py`: what a bundle carries (submissions with their results, review, corrections and audit entries; the
office's other audit entries; photos by content hash) and the export. `merge.py`: the import, one transaction per
submission. `commands.py`: `formc sync`; the web app's `POST /api/sync` runs the same import.
"""
