"""`formc serve` and `formc users`: the review web app's commands (cli.py adds them to `formc`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

DEFAULT_DB = "results.db"  # beside where `formc serve` runs, like `formc batch --db sqlite:///results.db`
DEFAULT_STORE = "photos"


def _db_url(db_url: str | None) -> str:
    from ocr.db.store import default_url

    return db_url or default_url(DEFAULT_DB)


@click.command()
@click.option("--db", "db_url", help=f"results database (default: sqlite:///{DEFAULT_DB}), or postgresql+psycopg://...")
@click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_STORE,
              show_default=True, help="photo store: uploaded photos by sha256, drawn previews and crops, the cookie key")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--secret", help="cookie signing key (default: $FORMC_SECRET, else one kept in the store)")
@click.option("--https", "https_only", is_flag=True, help="mark the session cookie Secure (serve behind TLS)")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="uploads read at once in this process (without --broker)")
@click.option("--broker", help="hand uploads to the `formc worker`s on this broker (their --store must be this --store, "
              "their --db this --db)")
def serve(db_url: str | None, store_dir: Path, host: str, port: int, secret: str | None, https_only: bool,
          workers: int, broker: str | None) -> None:
    """The review web app: upload and preview, review queue, corrections, verification, exports, dashboard."""
    import uvicorn

    from ocr.db.store import StoreUnavailable
    from ocr.web.app import create_app

    try:
        app = create_app(_db_url(db_url), store_dir, secret=secret, https_only=https_only, workers=workers,
                         broker=broker)
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    uvicorn.run(app, host=host, port=port, log_level="info")


@click.group()
def users() -> None:
    """Accounts of the review web app."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["operator", "reviewer", "admin"]), required=True)
@click.option("--db", "db_url", help=f"results database (default: sqlite:///{DEFAULT_DB})")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin (no prompt)")
def users_add(name: str, role: str, db_url: str | None, password_stdin: bool) -> None:
    """Add an account; the password is asked for (twice), or read from stdin with --password-stdin."""
    from ocr.db.store import ResultStore
    from ocr.review.accounts import hash_password
    from ocr.review.errors import ReviewError
    from ocr.review.workflow import Reviews

    password = sys.stdin.readline().rstrip("\n") if password_stdin else click.prompt(
        "password", hide_input=True, confirmation_prompt=True, err=True)
    try:
        password_hash = hash_password(password)
        with ResultStore(_db_url(db_url)) as store:
            user = Reviews(store).add_user(name, role, password_hash)
    except (ValueError, ReviewError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{user.name} ({user.role}) added", err=True)
