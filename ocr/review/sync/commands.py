"""`formc sync`: an office's key, its export, the centre's trusted keys and import, a push to the centre (cli.py adds
the group to `formc`). Thin: the work is in `ocr/review/sync`; what they need is imported inside each command, so that
`formc` starts without loading the database layer."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import click

from ocr.review.commands import DB_OPTION, DEFAULT_STORE, database_url

_STORE = click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_STORE,
                      show_default=True, help="the photo store (formc serve --store, formc batch --store)")


@click.group()
def sync() -> None:
    """Offline offices: export what changed as a signed bundle; the centre imports it (nothing twice, never an
    overwrite: a disagreement becomes a source_conflict)."""


@sync.command("keygen")
@click.argument("office")
@click.option("--out", "key_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the office's key file (keep it on the office's machine; never overwritten)")
def keygen(office: str, key_file: Path) -> None:
    """Make OFFICE's signing key; prints `OFFICE PUBLIC_KEY` for the centre's `formc sync trust`."""
    from ocr.review.sync.keys import KeyFileError, new_key, write_key

    try:
        key = new_key(office)
        write_key(key, key_file)
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{key.office} {key.public}")
    click.echo(f"key written to {key_file}; at the centre: formc sync trust {key.office} {key.public}", err=True)


@sync.command("trust")
@click.argument("office")
@click.argument("public_key")
@DB_OPTION
def trust(office: str, public_key: str, db_url: str | None) -> None:
    """At the centre: import bundles of OFFICE signed with PUBLIC_KEY (as `formc sync keygen` printed it); replaces
    the office's earlier key."""
    from ocr.db.store import ResultStore, StoreUnavailable
    from ocr.review.sync.keys import KeyFileError
    from ocr.review.sync.keys import trust as trust_key

    try:
        with ResultStore(database_url(db_url)) as store:
            replaced = trust_key(store.engine, office, public_key)
    except (KeyFileError, StoreUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{office}: key {'replaced' if replaced else 'trusted'}", err=True)


def _since(text: str | None, store, office: str) -> datetime | None:
    from ocr.review.sync.content import last_export

    if text is None:
        return None
    if text == "last":
        return last_export(store.engine, office)  # None: no export yet, so everything
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: give `last` or an ISO time (2026-11-27T14:00+07:00)",
                                 param_hint="--since") from exc
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


@sync.command("export")
@DB_OPTION
@_STORE
@click.option("--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the office's key file (formc sync keygen)")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="the bundle (.zip)")
@click.option("--since", "since_text", help="only what changed from then on: `last` (this office's last export) or "
                                            "an ISO time (UTC unless it says its zone); default: everything")
def export(db_url: str | None, store_dir: Path, key_file: Path, out: Path, since_text: str | None) -> None:
    """Write the office's submissions (results, review, corrections, audit) and their photos to a signed bundle."""
    from ocr.db.store import ResultStore, StoreUnavailable
    from ocr.review.sync.content import export_bundle
    from ocr.review.sync.keys import KeyFileError, read_key
    from ocr.run.photo_store import PhotoStore

    try:
        key = read_key(key_file)
        with ResultStore(database_url(db_url)) as store:
            since = _since(since_text, store, key.office)
            photos = PhotoStore(store_dir) if store_dir.is_dir() else None  # read only: never made here
            report = export_bundle(store, photos, key, out, since)
    except (KeyFileError, StoreUnavailable, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(str(out))
    click.echo(f"{report.submissions} submissions, {report.photos} photos from {key.office}"
               f"{f' changed since {since.isoformat()}' if since else ''}"
               f"{f'; {report.photos_missing} photos not in {store_dir}' if report.photos_missing else ''}", err=True)


@sync.command("import")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DB_OPTION
@_STORE
def import_(bundle: Path, db_url: str | None, store_dir: Path) -> None:
    """At the centre: merge an office's BUNDLE (again: nothing twice). Prints every source_conflict it made."""
    from ocr.db.store import ResultStore, StoreUnavailable
    from ocr.review.sync.bundle import Refusal
    from ocr.review.sync.merge import import_bundle
    from ocr.run.photo_store import PhotoStore

    try:
        with ResultStore(database_url(db_url)) as store, bundle.open("rb") as stream:
            report = import_bundle(store, PhotoStore(store_dir), stream)
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    if isinstance(report, Refusal):
        raise click.ClickException(f"{bundle} refused: {report}")
    for line in report.conflicts:
        click.echo(line)
    click.echo(f"{report.origin}: {report.submissions} submissions, {report.merged} merged, {report.unchanged} imported "
               f"before, {report.photos} photos, {len(report.conflicts)} conflicts", err=True)


@sync.command("push")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "centre", required=True, help="the centre's review app, e.g. https://formc.example.go.id")
def push(bundle: Path, centre: str) -> None:
    """Send BUNDLE to the centre's POST /api/sync (when the office is online); its signature is the credential."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(centre.rstrip("/") + "/api/sync", data=bundle.read_bytes(), method="POST",
                                     headers={"Content-Type": "application/zip"})
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            report = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        try:
            refusal = json.loads(body)
            why = f"{refusal['reason']}: {refusal['message']}"
        except (ValueError, KeyError, TypeError):
            why = body.strip() or exc.reason
        raise click.ClickException(f"{bundle} refused by {centre} ({exc.code}): {why}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"cannot reach {centre}: {exc}") from exc
    for line in report["conflicts"]:
        click.echo(line)
    click.echo(f"{report['origin']}: {report['submissions']} submissions, {report['merged']} merged, "
               f"{report['unchanged']} imported before, {len(report['conflicts'])} conflicts", err=True)
