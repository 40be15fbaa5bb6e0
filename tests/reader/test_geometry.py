"""reader/geometry.py (rectify and point mapping) and the refusals of the stages that find nothing."""

import cv2
import numpy as np

from ocr.reader.geometry import map_points, rectify, rectify_quad, scaled, window_to_photo
from ocr.reader.locate import locate, read_tag
from ocr.reader.reasons import ReasonCode, Refusal
from ocr.reader.reference import match_reference
from ocr.templates.catalog import get_template

RNG = np.random.default_rng(7)
PHOTO = RNG.integers(0, 256, (300, 400), dtype=np.uint8)


def test_rectify_samples_page_mm_through_the_homography():
    # A photo at 2 px per page mm, no tilt: a window at 2 px/mm from (10, 5) mm is the photo from px (20, 10).
    h = np.diag([2.0, 2.0, 1.0])
    window = rectify(PHOTO, h, (10.0, 5.0), (50, 40), 2.0)
    assert window.shape == (40, 50)
    assert np.array_equal(window, PHOTO[10:50, 20:70])


def test_rectify_border_outside_the_photo():
    h = np.diag([2.0, 2.0, 1.0])
    replicated = rectify(PHOTO, h, (-5.0, 0.0), (20, 5), 2.0)
    assert np.array_equal(replicated[:, :10], np.repeat(PHOTO[:5, :1], 10, axis=1))
    constant = rectify(PHOTO, h, (-5.0, 0.0), (20, 5), 2.0, border=cv2.BORDER_CONSTANT, border_value=255)
    assert (constant[:, :10] == 255).all()


def test_window_to_photo_maps_window_px_to_photo_px():
    h = np.array([[1.5, 0.1, 30.0], [-0.2, 1.4, 12.0], [1e-4, 2e-4, 1.0]])
    to_photo = window_to_photo(h, (7.0, 3.0), 4.0)
    # Window px (8, 4) is page mm (7 + 8 / 4, 3 + 4 / 4) = (9, 4).
    assert np.allclose(map_points(to_photo, [8.0, 4.0]), map_points(h, [9.0, 4.0]))


def test_rectify_quad_is_opencv_s_forward_warp_to_the_bit():
    corners = np.array([(40.3, 30.1), (180.7, 35.2), (175.9, 160.4), (38.2, 150.8)])
    target = np.array([(4, 4), (44, 4), (44, 44), (4, 44)], np.float32)
    m = cv2.getPerspectiveTransform(corners.astype(np.float32), target)
    expected = cv2.warpPerspective(PHOTO, m, (48, 48), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    assert np.array_equal(rectify_quad(PHOTO, corners, target, (48, 48)), expected)


def test_map_points_keeps_the_shape_and_scaled_composes():
    h = np.array([[1.5, 0.1, 30.0], [-0.2, 1.4, 12.0], [1e-4, 2e-4, 1.0]])
    points = RNG.uniform(0, 100, (3, 4, 2))
    assert map_points(h, points).shape == (3, 4, 2)
    halved = scaled(h, out_scale=0.5, in_scale=4.0)
    assert np.allclose(map_points(halved, points), 0.5 * map_points(h, 4.0 * points))


def test_stages_that_find_nothing_return_a_refusal():
    template = get_template("ppwp-2024")
    blank = np.full((1200, 900), 235, np.uint8)
    located = locate(blank, template)
    assert isinstance(located, Refusal) and not located and located.code == ReasonCode.NO_PAGE_FOUND
    tag = read_tag(blank, template, np.diag([1.0, 1.0, 1.0]))
    assert isinstance(tag, Refusal) and not tag
    match = match_reference(blank, ())
    assert isinstance(match, Refusal) and not match and match.code == ReasonCode.NO_PAGE_FOUND
    assert "photograph" in located.message and "formc template list" in match.message


def test_grey_level_percentiles_are_numpys_to_the_bit():
    from ocr.reader.levels import percentiles

    rng = np.random.default_rng(3)
    for _ in range(300):
        lo, hi = sorted(int(v) for v in rng.integers(0, 256, 2))
        gray = rng.integers(lo, hi + 1, (int(rng.integers(1, 60)), int(rng.integers(1, 60)))).astype(np.uint8)
        q = [0, 1, 5, 50, 90, 99, 100, *rng.uniform(0, 100, 3)]
        assert np.array_equal(percentiles(gray[::2, ::3], q), np.percentile(gray[::2, ::3], q))
    assert percentiles(np.array([7], np.uint8), 90) == 7.0
