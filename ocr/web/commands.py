"""`formc serve` and `formc users`: the review web app's commands (cli.py adds them to `formc`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ocr.review.commands import DB_OPTION, DEFAULT_DB, DEFAULT_STORE, database_url

if TYPE_CHECKING:
    from ocr.review.workflow import Reviews

# ocr.review.accounts.ROLES, spelled out so that `formc` starts without loading the database layer (tests/test_cli.py).
ROLES = ("operator", "reviewer", "admin")
TIMEZONES = ("Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura")  # ocr.web.local_time.ZONES, for the same reason


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
@click.option("--timezone", type=click.Choice(TIMEZONES), default="Asia/Jakarta", show_default=True,
              help="times on the pages in WIB (Asia/Jakarta), WITA (Asia/Makassar) or WIT (Asia/Jayapura); stored in UTC")
@click.option("--templates", "templates_dir", type=click.Path(file_okay=False, path_type=Path),
              help="where the template editor saves the office's own templates, read with the shipped ones (put in "
              "FORMC_TEMPLATES for this server; default: the first folder of FORMC_TEMPLATES, else <store>/templates)")
def serve(db_url: str | None, store_dir: Path, host: str, port: int, secret: str | None, https_only: bool,
          workers: int, broker: str | None, timezone: str, templates_dir: Path | None) -> None:
    """The review web app: upload and preview, review queue, corrections, verification, exports, dashboard, the
    template editor."""
    import uvicorn

    from ocr.db.store import StoreUnavailable
    from ocr.templates.catalog import add_own_folder
    from ocr.web.app import create_app, own_templates_folder

    templates_dir = own_templates_folder(templates_dir, store_dir)
    add_own_folder(templates_dir)
    try:
        app = create_app(database_url(db_url), store_dir, secret=secret, https_only=https_only, workers=workers,
                         broker=broker, timezone=timezone, templates_dir=templates_dir)
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    uvicorn.run(app, host=host, port=port, log_level="info")


@click.group()
def users() -> None:
    """Accounts of the review web app."""


def _password(password_stdin: bool) -> str:
    """The password from the first line of stdin, or asked for twice."""
    return sys.stdin.readline().rstrip("\n") if password_stdin else click.prompt(
        "password", hide_input=True, confirmation_prompt=True, err=True)


@contextmanager
def _accounts(db_url: str | None) -> Iterator[Reviews]:
    """The accounts of the database at `db_url`; a refusal (unknown user, short password) is a one-line error."""
    from ocr.db.store import ResultStore
    from ocr.review.errors import ReviewError
    from ocr.review.workflow import Reviews

    try:
        with ResultStore(database_url(db_url)) as store:
            yield Reviews(store)
    except (ValueError, ReviewError) as exc:
        raise click.ClickException(str(exc)) from exc


_STDIN_OPTION = click.option("--password-stdin", is_flag=True,
                             help="read the password from the first line of stdin (no prompt)")


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@DB_OPTION
@_STDIN_OPTION
def users_add(name: str, role: str, db_url: str | None, password_stdin: bool) -> None:
    """Add an account; the password is asked for (twice), or read from stdin with --password-stdin."""
    from ocr.review.accounts import hash_password

    password = _password(password_stdin)
    with _accounts(db_url) as accounts:
        user = accounts.add_user(name, role, hash_password(password))
    click.echo(f"{user.name} ({user.role}) added", err=True)


@users.command("list")
@DB_OPTION
def users_list(db_url: str | None) -> None:
    """Every account: name, role, active or not, last log-in (UTC)."""
    with _accounts(db_url) as accounts:
        found = accounts.accounts()
    rows = [("name", "role", "active", "last log-in (UTC)")] + [
        (a.name, a.role, "yes" if a.active else "no", a.last_login.strftime("%Y-%m-%d %H:%M") if a.last_login else "never")
        for a in found]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[3]]))


@users.command("deactivate")
@click.argument("name")
@DB_OPTION
@click.option("--undo", is_flag=True, help="activate the account again")
def users_deactivate(name: str, db_url: str | None, undo: bool) -> None:
    """Deactivate an account (kept for the audit log); its open sessions end at once."""
    with _accounts(db_url) as accounts:
        accounts.set_active(name, undo)
    click.echo(f"{name} {'activated' if undo else 'deactivated'}", err=True)


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@DB_OPTION
def users_set_role(name: str, role: str, db_url: str | None) -> None:
    """Give an account another role; its open sessions end at once."""
    with _accounts(db_url) as accounts:
        accounts.set_role(name, role)
    click.echo(f"{name} is {role} now", err=True)


@users.command("reset-password")
@click.argument("name")
@DB_OPTION
@_STDIN_OPTION
@click.option("--generate", is_flag=True, help="make a random password and print it (stdout) instead of asking")
def users_reset_password(name: str, db_url: str | None, password_stdin: bool, generate: bool) -> None:
    """Set an account's password (asked for twice, read from stdin, or generated and printed); its open sessions
    end at once."""
    from ocr.review.accounts import generate_password, hash_password

    if generate and password_stdin:
        raise click.UsageError("--generate or --password-stdin, not both")
    password = generate_password() if generate else _password(password_stdin)
    with _accounts(db_url) as accounts:
        accounts.reset_password(name, hash_password(password))
    if generate:
        click.echo(password)
    click.echo(f"password of {name} reset", err=True)
