"""`formc regions`, `formc recap`, `formc sources` and `formc integrity`: the results database's region registry,
recapitulation and cross-checks (cli.py adds them to `formc`). What they need is imported inside each command, so
that `formc` starts without loading the database layer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ocr.db.regions import Regions

DEFAULT_DB = "results.db"  # beside where `formc serve` runs, like `formc batch --db sqlite:///results.db`
DEFAULT_STORE = "photos"  # the photo store `formc serve` and `formc sync` use unless told otherwise
DB_OPTION = click.option("--db", "db_url", help=f"results database (default: sqlite:///{DEFAULT_DB})")


def database_url(db_url: str | None) -> str:
    from ocr.db.store import default_url

    return db_url or default_url(DEFAULT_DB)


@click.group()
def regions() -> None:
    """The region registry: Kemendagri codes and names, filled from the official list on first use."""


@contextmanager
def _regions(db_url: str | None) -> Iterator[Regions]:
    """The region registry of the database at `db_url`; an unusable list or database is a one-line error."""
    from ocr.db.regions import RegionError, Regions
    from ocr.db.store import ResultStore, StoreUnavailable

    try:
        with ResultStore(database_url(db_url)) as store:
            yield Regions(store.engine)
    except (RegionError, StoreUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc


@regions.command("import")
@click.argument("csv_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DB_OPTION
def regions_import(csv_file: Path, db_url: str | None) -> None:
    """Load a newer code list, a CSV `code,name` (codes of 2, 4, 6 or 10 digits, dotted or not): codes added or
    renamed, none removed."""
    from ocr.db.regions import read_csv

    with _regions(db_url) as registry:
        count = registry.load(read_csv(csv_file.read_text(encoding="utf-8-sig")))
    click.echo(f"{count} regions loaded from {csv_file}", err=True)


@regions.command("show")
@click.argument("code")
@DB_OPTION
def regions_show(code: str, db_url: str | None) -> None:
    """The region CODE and those above it: province, kabupaten/kota, kecamatan, kelurahan/desa."""
    from ocr.db.regions import plain_code

    plain = plain_code(code)
    if plain is None:
        raise click.BadParameter(f"{code!r} is no Kemendagri code (2, 4, 6 or 10 digits)", param_hint="CODE")
    with _regions(db_url) as registry:
        chain = registry.chain(plain)
    if not chain:
        raise click.ClickException(f"{plain} is not in the region registry")
    for region in chain:
        click.echo(f"{region.level:<15} {region.code:<10} {region.name}")


@regions.command("tps-import")
@click.argument("csv_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DB_OPTION
def regions_tps_import(csv_file: Path, db_url: str | None) -> None:
    """Load how many TPS each kelurahan/desa has, a CSV `code,tps` (10-digit codes, dotted or not): the recap's
    expected TPS. A desa the registry lacks refuses the whole list."""
    from ocr.db.regions import read_tps_csv

    with _regions(db_url) as registry:
        count = registry.load_tps_counts(read_tps_csv(csv_file.read_text(encoding="utf-8-sig")))
    click.echo(f"TPS counts of {count} kelurahan/desa loaded from {csv_file}", err=True)


@click.command()
@DB_OPTION
@click.option("--level", type=click.Choice(["desa", "kecamatan", "kabupaten", "provinsi"]), required=True,
              help="one row per region of this level")
@click.option("--election", type=click.Choice(["gubernur", "bupati", "walikota", "presiden"]), required=True)
@click.option("--region", "code", default="", help="only inside this region (a Kemendagri code, dotted or not)")
@click.option("--format", "output", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
def recap(db_url: str | None, level: str, election: str, code: str, output: str) -> None:
    """Totals of an election per region of a level, as the D.Hasil recap forms: TPS expected, received, verified, in
    review, rejected; each paslon, suara sah, tidak sah, total, DPT and pengguna over the verified TPS, then over every
    TPS's newest machine read. The last row is the region itself."""
    from ocr.db.regions import Regions, plain_code
    from ocr.db.store import ResultStore, StoreUnavailable
    from ocr.review.errors import ReviewError
    from ocr.review.recap import recap as recap_of

    plain = plain_code(code) if code else ""
    if plain is None:
        raise click.BadParameter(f"{code!r} is no Kemendagri code (2, 4, 6 or 10 digits)", param_hint="--region")
    try:
        with ResultStore(database_url(db_url)) as store:
            found = recap_of(store, Regions(store.engine), election, level, plain)
    except (ReviewError, StoreUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    if output == "json":
        click.echo(json.dumps(found.as_json(), ensure_ascii=False, indent=1))
        return
    click.echo(found.as_csv(), nl=False)


@click.group()
def sources() -> None:
    """More than one source per TPS: numbers from outside, compared with the reads."""


@sources.command("import")
@click.argument("numbers", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--db", "db_url", default="sqlite:///results.db", show_default=True, help="the results database")
@click.option("--mapping", "mapping_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML: the template, the columns naming the TPS, column (or dotted key) -> field id")
@click.option("--source-name", required=True, help="what the source is called beside the reads, e.g. kpu")
def sources_import(numbers: Path, db_url: str, mapping_path: Path, source_name: str) -> None:
    """Stores a CSV or JSON file's numbers per TPS as the source SOURCE_NAME (never a TPS's result by itself) and
    prints where they differ from the TPS's other sources."""
    from ocr.db.store import ResultStore, StoreUnavailable
    from ocr.review.external import MappingError, load_mapping, read_numbers
    from ocr.review.sources import Sources
    from ocr.review.workflow import Reviews

    try:
        mapping = load_mapping(mapping_path)
        rows = read_numbers(numbers, mapping)
        with ResultStore(db_url) as store:
            book = Sources(Reviews(store))
            book.import_numbers(source_name, mapping.template, rows)
            found = [f"{key} {c}" for key in rows for c in book.of(key).conflicts]
    except (MappingError, StoreUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    for line in found:
        click.echo(line)
    click.echo(f"{len(rows)} TPS imported as {source_name}; {len(found)} disagreements", err=True)


@click.command()
@click.argument("results", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--db", "db_url", help="read the pages from this results database instead of a RESULTS.jsonl")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per pair instead of a table")
@click.option("--max-bits", type=click.IntRange(0, 256), default=None,
              help="most differing bits of one sheet's two photos (default: the threshold bench/photo_hash.py chose)")
def integrity(results: Path | None, db_url: str | None, as_json: bool, max_bits: int | None) -> None:
    """Pages of different submissions that show the same sheet (a photo re-taken or re-compressed under another TPS),
    from a batch's RESULTS.jsonl or a results database; nearest first."""
    from ocr.reader.page_hash import SAME_SHEET_BITS
    from ocr.run.same_sheet import HashedPage, hashed_pages, same_sheets

    if (results is None) == (db_url is None):
        raise click.UsageError("give either RESULTS.jsonl or --db URL")
    if db_url is not None:
        from ocr.db.store import ResultStore, StoreUnavailable

        try:
            with ResultStore(db_url) as store:
                pages = [HashedPage(*row) for row in store.page_hashes()]
        except StoreUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
    else:
        from ocr.eval.score import load_results

        pages = list(hashed_pages(load_results(results)))
    pairs = same_sheets(pages, SAME_SHEET_BITS if max_bits is None else max_bits)
    if as_json:
        for pair in pairs:
            click.echo(json.dumps({"bits": pair.bits, "template": pair.first.template, "page": pair.first.page,
                                   "first": {"submission": pair.first.submission, "source": pair.first.source},
                                   "second": {"submission": pair.second.submission, "source": pair.second.source}}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("bits", "template", "page", "submission", "photo", "submission", "photo",
                  title=f"the same sheet under two submissions: {len(pairs)} pairs among {len(pages)} pages")
    for pair in pairs:
        table.add_row(str(pair.bits), pair.first.template, str(pair.first.page), pair.first.submission,
                      pair.first.source, pair.second.submission, pair.second.source)
    Console().print(table)
