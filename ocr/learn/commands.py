"""`formc template learn`: the command over ocr/learn (registered in cli.py's `template` group)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("learn")
@click.argument("scans", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="the template YAML file")
@click.option("--name", help="template id (default: from the first scan's file name)")
@click.option("--page", type=click.IntRange(1), help="one scan's page number in its form (default 1); several scans "
              "are numbered by their page tags")
@click.option("--overlay", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG of what was found, to check by eye (several scans: one per page, NAME-page-N.png)")
@click.option("--dpi", type=click.FloatRange(min=1, min_open=True), help="a flat scan's resolution")
@click.option("--marker-mm", type=click.FloatRange(min=0, min_open=True),
              help="a photo's scale: the side of one corner-marker square as measured on the paper")
@click.option("--page-mm", help="a photo of a form printed without corner markers: the paper's size in mm, WxH (e.g. "
              "210x297); the sheet is found by its outline and flattened; the file names the photo (copied beside --out) and how")
@click.option("--outline", type=click.Choice(["paper", "table"]), default="paper", show_default=True,
              help="with --page-mm: the page is the sheet's outline (on a darker background), or the printed table's "
              "outer frame (a sheet on a background as light as itself; --page-mm is then the table's size)")
@click.option("--turn", type=click.Choice(["0", "90", "180", "270"]), help="with --page-mm: turn the flattened sheet "
              "this many degrees clockwise to set it upright (default 0: as the photo shows it; check the overlay)")
@click.option("--no-labels", is_flag=True, help="do not read row labels with Tesseract (ids row_NN_col_M)")
def learn(scans: tuple[Path, ...], out: Path, name: str | None, page: int | None, overlay: Path | None,
          dpi: float | None, marker_mm: float | None, page_mm: str | None, outline: str, turn: str | None,
          no_labels: bool) -> None:
    """Propose a template from scans or photos of a blank or filled form's pages (one or all): boxes, fields, ids,
    rules (proposed)."""
    import re

    import cv2

    from ocr.learn.learn import LearnSettings, learn_page
    from ocr.learn.page import flat_page
    from ocr.learn.write import overlay as draw_overlay
    from ocr.learn.write import pages_by_tag, write_template
    from ocr.reader.decode import decode_photo

    if len(scans) > 1 and page is not None:
        raise click.BadParameter("several scans are numbered by their page tags: leave --page out", param_hint="--page")
    name = name or re.sub(r"[^a-z0-9]+", "-", scans[0].stem.lower()).strip("-") or "learned"
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise click.BadParameter(f"{name!r}: lower-case letters, digits and '-' only", param_hint="--name")
    size_mm = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*[xX×]\s*(\d+(?:\.\d+)?)\s*", page_mm) if page_mm else None
    if page_mm is not None and (not size_mm or len(scans) > 1 or dpi or marker_mm):
        raise click.BadParameter("one photo, WxH in mm (e.g. 210x297), without --dpi or --marker-mm",
                                 param_hint="--page-mm")
    if (turn is not None or outline != "paper") and page_mm is None:
        raise click.BadParameter("--turn and --outline apply to the sheet --page-mm flattens: give --page-mm too",
                                 param_hint="--page-mm")
    px_per_mm = dpi / 25.4 if dpi else None
    learned = []
    for scan in scans:
        photo = decode_photo(scan.read_bytes(), scan.name)
        if not photo:
            raise click.ClickException(f"{scan}: {photo.message}")
        gray, flattened = photo.gray, None
        if size_mm:  # the sheet flattened is the scan the template is made on; the file says how, from the photo
            flat = flat_page(gray, (float(size_mm.group(1)), float(size_mm.group(2))), int(turn or 0), outline)
            if not flat:
                raise click.ClickException(f"{scan}: {flat.message}")
            gray, px_per_mm = flat.image, flat.px_per_mm
            flattened = flat.spec()
        one = learn_page(gray, LearnSettings(px_per_mm=px_per_mm, marker_square_mm=marker_mm,
                                             read_labels=not no_labels))
        if not one:
            raise click.ClickException(f"{scan}: {one.message}")
        learned.append(one)
    pages = pages_by_tag(learned) if len(learned) > 1 else {page or 1: learned[0]}
    if not pages:
        raise click.ClickException(pages.message)
    if overlay is not None:
        overlay.parent.mkdir(parents=True, exist_ok=True)
        for number, one in pages.items():
            path = overlay if len(pages) == 1 else overlay.with_name(f"{overlay.stem}-page-{number}{overlay.suffix}")
            if not cv2.imwrite(str(path), draw_overlay(one)):
                raise click.ClickException(f"cannot write the overlay {path}")
    try:
        written = write_template(pages, name, list(scans), out, px_per_mm, flattened)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc}") from exc
    if not written:
        raise click.ClickException(written.message)
    for number, one in pages.items():
        boxes = sum(len(f.boxes_mm) for f in one.fields)
        bent = f", a bend of up to {one.bend.largest_mm:.1f} mm undone" if one.bend and one.bend.largest_mm >= 0.5 else ""
        click.echo(f"{out}: page {number}: {len(one.fields)} fields ({boxes} boxes), {len(one.rules)} proposed rules"
                   f"{bent}")
    click.echo(f"{out}: {'markers and tag' if written.markers else 'reference image'}, {len(pages)} page(s) learned")
