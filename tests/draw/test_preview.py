"""Previews drawn from real reads of the bundled samples: status colours on the boxes, values beside them, refusals."""

import hashlib

import cv2
import numpy as np
import pytest

from ocr.draw.preview import (
    STATUS_RGB,
    field_crop,
    render_page_preview,
    render_refusal,
    render_submission_preview,
    warp_page,
)
from ocr.pipeline import PhotoInput, ReaderSettings, read_pages, submission_result
from ocr.record import SubmissionResult, TallyCount
from ocr.templates.catalog import load_templates
from ocr.templates.render import page_size_px, rect_px, tally_cells_px
from tests.conftest import REPO

SCALE = 4.0  # px per page mm


TEMPLATES = tuple(load_templates().values())


def _read(photos):
    read = read_pages([PhotoInput(n, d, hashlib.sha256(d).hexdigest()) for n, d in photos], TEMPLATES, ReaderSettings())
    return read, submission_result("tps", read)


def _grays(read):
    return [p.photo.gray if p.photo is not None else None for p in read.pages]


@pytest.fixture(scope="module")
def review():
    """The sample written with an arithmetic slip: read, judged and previewed once for the module."""
    folder = REPO / "samples" / "kwk-gubernur-3" / "tps-0002"
    read, result = _read([(p.name, p.read_bytes()) for p in sorted(folder.glob("page-*.jpg"))])
    assert result.status == "review"
    return read, result, render_submission_preview(result, TEMPLATES, _grays(read), SCALE)


def _page(read, number):
    return next(p for p in read.pages if p.page == number)


def _is(image: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """Mask of pixels within a small distance of the colour (the image is BGR)."""
    return np.abs(image.astype(int) - np.array(rgb[::-1])).max(axis=-1) < 40


def _coloured(image: np.ndarray) -> np.ndarray:
    """Mask of the drawing: the photo underneath is grey."""
    return image.astype(int).max(axis=-1) - image.astype(int).min(axis=-1) > 60


def _ring(shape: tuple[int, int], field, reach: int = 8) -> np.ndarray:
    """Mask of a band of +-`reach` px along every box of the field in page px (the print is a few px off its
    nominal place on a bent page: the outline follows the refined boxes)."""
    mask = np.zeros(shape, bool)
    for box in field.boxes_mm:
        x, y, w, h = rect_px(box, SCALE)
        mask[y - reach:y + h + reach, x - reach:x + w + reach] = True
        mask[y + reach:y + h - reach, x + reach:x + w - reach] = False
    return mask


def test_one_image_per_photo_with_the_page_at_page_px(review):
    read, _, previews = review
    assert [s for s, _ in previews] == [p.source for p in read.pages]
    width, height = page_size_px(read.pages[0].alignment.template, SCALE)
    for _, image in previews:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert image.shape[0] >= height and image.shape[1] > width  # the side panel is to the right of the page


def test_flagged_fields_are_outlined_orange_and_ok_fields_green(review):
    read, result, previews = review
    for number in (1, 2, 3):
        image = dict(previews)[_page(read, number).source]
        fields = _page(read, number).alignment.template.page(number).fields
        by_status = {s: [f for f in fields if result.fields[f.id].status == s] for s in ("ok", "review")}
        assert by_status["ok"] and by_status["review"], number
        for status, other in (("ok", "review"), ("review", "ok")):
            for field in by_status[status]:
                ring = image[_ring(image.shape[:2], field)]
                outline = sum(2 * (w + h) * 3 for _, _, w, h in (rect_px(b, SCALE) for b in field.boxes_mm))  # 3 px wide
                assert _is(ring, STATUS_RGB[status]).sum() > 0.6 * outline, (field.id, status)
                assert _is(ring, STATUS_RGB[other]).sum() < 0.15 * outline, (field.id, status)  # a neighbour's label


def test_fields_of_other_pages_are_not_drawn(review):
    read, _, previews = review
    page = _page(read, 2)
    template = page.alignment.template
    image = dict(previews)[page.source]
    width, height = page_size_px(template, SCALE)
    near = np.zeros((height, width), bool)  # within 40 mm of a page-2 field: its outline and its label
    for field in template.page(2).fields:
        for box in field.boxes_mm:
            x, y, w, h = rect_px(box, SCALE)
            near[max(0, y - 160):y + h + 160, max(0, x - 160):x + w + 160] = True
    drawn = _coloured(image[:height, :width])
    assert drawn[near].any() and not drawn[~near].any()
    for field in template.page(1).fields:  # e.g. the empty lower half of page 2 where page 1 has boxes
        ring = _ring((height, width), field)
        if not near[ring].any():
            assert not drawn[ring].any(), field.id


def test_the_value_is_drawn_beside_its_boxes(review):
    read, result, previews = review
    page = _page(read, 3)
    field = page.alignment.template.fields["suara_sah"]
    value = result.fields["suara_sah"].value
    assert value is not None and value != 999
    changed = result.model_copy(deep=True)
    changed.fields["suara_sah"].value = 999
    before = dict(previews)[page.source]
    after = render_page_preview(page.photo.gray, page.alignment, changed, SCALE)
    width, height = page_size_px(page.alignment.template, SCALE)
    differs = (before[:height, :width] != after[:height, :width]).any(axis=-1)
    x, y, w, h = rect_px(field.boxes_mm[-1], SCALE)
    beside = np.zeros_like(differs)
    beside[y - h:y + 2 * h, x + w:x + w + 3 * h] = True  # right of the last box, where the page has room
    assert differs[beside].sum() > 500 and not differs[~beside].any()
    # Elsewhere the photo shows through, as the plain warp has it.
    plain = warp_page(page.photo.gray, page.alignment, SCALE)
    drawn = cv2.dilate(_coloured(before[:height, :width]).astype(np.uint8), np.ones((15, 15))) > 0
    assert np.array_equal(before[:height, :width, 1][~drawn], plain[~drawn])


def test_a_rows_tally_is_drawn_over_the_end_of_its_row_green_where_it_agrees(review):
    read, result, _ = review
    page = _page(read, 2)
    grid = page.alignment.template.page(2).tally_grids[0]
    agrees, differs, struck, blank = grid.row_field_ids[:4]
    untallied = result.model_copy(deep=True)
    for read_field in untallied.fields.values():  # whatever the reader counted: these rows say what the test sets
        read_field.tally = None
    tallied = untallied.model_copy(deep=True)
    tallied.fields[agrees].value = tallied.fields[differs].value = 12
    tallied.fields[agrees].tally = TallyCount(status="counted", count=12, p=0.9, cells=["5", "5", "2"] + ["0"] * 9)
    tallied.fields[differs].tally = TallyCount(status="counted", count=15, p=0.9, cells=["5", "5", "5"] + ["0"] * 9)
    tallied.fields[struck].value = 4  # struck out as unused, yet a 4 written: the marks disagree
    tallied.fields[struck].tally = TallyCount(status="struck", count=0, p=1.0, cells=["struck"] * 12)
    tallied.fields[blank].tally = TallyCount(status="none", count=None, p=0.0, cells=["0"] * 12)
    image = render_page_preview(page.photo.gray, page.alignment, tallied, SCALE)

    def end_of(preview, row):
        """The last three cells of a tally row, where its label goes."""
        cells = tally_cells_px(grid, SCALE)[row]
        x, y, _, h = cells[-3]
        return preview[y:y + h, x:cells[-1][0] + cells[-1][2]]

    green, red = STATUS_RGB["ok"], STATUS_RGB["unreadable"]
    assert _is(end_of(image, 0), green).sum() > 300 and not _is(end_of(image, 0), red).any()
    assert _is(end_of(image, 1), red).sum() > 300 and not _is(end_of(image, 1), green).any()
    assert _is(end_of(image, 2), red).sum() > 300
    assert not _coloured(end_of(image, 3)).any()  # no marks at all: nothing to say
    before = render_page_preview(page.photo.gray, page.alignment, untallied, SCALE)
    assert not any(_coloured(end_of(before, row)).any() for row in range(4))  # no tally in the record, no label


def test_refused_photos_get_their_reason_over_a_dimmed_thumbnail():
    blank = cv2.imencode(".jpg", np.full((900, 1200), 200, np.uint8))[1].tobytes()
    read, result = _read([("notes.txt", b"minutes of the count, not a photo"), ("wall.jpg", blank)])
    assert result.status == "rejected" and [p.refusal.code for p in read.pages] == ["not_an_image", "no_page_found"]
    previews = render_submission_preview(result, TEMPLATES, _grays(read))
    assert [s for s, _ in previews] == ["notes.txt", "wall.jpg"]
    for _, image in previews:
        assert image.dtype == np.uint8 and image.shape[2] == 3 and image.shape[1] >= 1000
        assert (image.min(axis=-1) > 240).mean() > 0.01  # large white letters
    no_photo = render_refusal("wall.jpg", "no_page_found", "message")
    over_photo = render_refusal("wall.jpg", "no_page_found", "message", np.full((900, 1200), 200, np.uint8))
    corner = (slice(-20, None), slice(-20, None))  # no text there
    assert 50 < over_photo[corner].mean() < 100 and abs(no_photo[corner].mean() - over_photo[corner].mean()) > 10
    blurry = render_refusal("wall.jpg", "too_blurry", "message")
    assert no_photo.shape == blurry.shape and (no_photo != blurry).any()


def test_field_crop_is_the_fields_boxes_enlarged(review):
    read, _, _ = review
    page = _page(read, 3)
    field = page.alignment.template.fields["suara_sah"]
    crop = field_crop(page.photo.gray, page.alignment, "suara_sah", px_per_mm=12.0, margin_mm=3.0)
    x0, y0 = field.boxes_mm[0][:2]
    x1, y1 = field.boxes_mm[-1][0] + field.boxes_mm[-1][2], field.boxes_mm[-1][1] + field.boxes_mm[-1][3]
    assert crop.shape == (round((y1 - y0 + 6) * 12), round((x1 - x0 + 6) * 12)) and crop.dtype == np.uint8
    for box in field.boxes_mm:  # the printed frame is dark on every box's top edge, the margin above it is paper
        x, y, w, _ = ((np.array(box) - [x0 - 3, y0 - 3, 0, 0]) * 12).round().astype(int)
        assert crop[y - 2:y + 3, x + 12:x + w - 12].mean() < crop[12:24, x + 12:x + w - 12].mean() - 60
    with pytest.raises(ValueError, match="page 1"):
        field_crop(page.photo.gray, page.alignment, "dpt_l")


def test_a_read_without_its_photos_cannot_be_previewed(review):
    read, result, _ = review
    with pytest.raises(ValueError, match="needs the photo"):
        render_submission_preview(result, TEMPLATES, [None] * len(read.pages))


def test_the_preview_is_drawn_from_the_record_alone(review):
    """The JSON record, its template and the photo draw what the reader's own alignment draws."""
    read, result, previews = review
    record = SubmissionResult.model_validate_json(result.model_dump_json())
    assert all(p.geometry is not None for p in record.pages)
    page = _page(read, 3)
    from_alignment = render_page_preview(page.photo.gray, page.alignment, result, SCALE)
    from_record = dict(render_submission_preview(record, TEMPLATES, _grays(read), SCALE))[page.source]
    assert from_record.shape == from_alignment.shape
    assert (np.abs(from_record.astype(int) - from_alignment).max(axis=-1) > 8).mean() < 1e-4


def test_photos_that_share_a_stem_get_previews_of_their_own():
    from ocr.draw.preview import photo_names

    assert photo_names(["x.jpg", "x.png", "y.jpg"]) == ["x.jpg", "x.png", "y"]
    assert photo_names(["in.zip:tps/p.jpg", "in.zip:tps/p.jpg (duplicate 2)"]) == ["p.jpg", "p.jpg (duplicate 2)"]
    assert photo_names(["a/p.jpg", "b/p.jpg"]) == ["p.jpg-1", "p.jpg-2"]
