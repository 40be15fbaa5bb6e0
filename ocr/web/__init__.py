"""The review web app (`formc serve`): upload and preview, review queue, corrections, verification, exports.

`ocr.web.app.create_app(db_url, store_dir)` builds it; see that module for who may open what.
"""
