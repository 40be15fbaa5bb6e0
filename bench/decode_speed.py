"""Full versus reduced-size JPEG decoding of 12 MP phone photos, measured side by side in one run.

    .venv/bin/python bench/decode_speed.py [--photos 12] [--repeat 3]

Makes 12 MP (4000 x 3000) phone photos with `formc synth`'s camera, then times each decoder on the
same bytes (one core, best of --repeat) and prints ms per photo and the ratio to a full greyscale
decode with OpenCV.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import simplejpeg
from PIL import Image

from ocr.synth.camera import PROFILES, photograph, plan_photo
from ocr.templates.catalog import get_template
from ocr.templates.render import render_page


def make_photos(count: int) -> list[bytes]:
    template = get_template("kwk-gubernur-3")
    rng = np.random.default_rng(0)
    profile = PROFILES["phone"]
    photos = []
    page = cv2.cvtColor(render_page(template, 1, 5 * 25.4), cv2.COLOR_GRAY2BGR)
    while len(photos) < count:
        plan = plan_photo(profile, template.page_size_mm, rng)
        if plan.frame[0] * plan.frame[1] < 11.5e6:
            continue
        jpeg, _ = photograph(page, 5.0, template.page_size_mm, plan, profile, rng)
        photos.append(jpeg)
    return photos


def _simplejpeg_scaled(data: bytes, factor: int) -> np.ndarray:
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    return simplejpeg.decode_jpeg(data, colorspace="GRAY", min_height=height // factor, min_width=width // factor)


def _pil_draft(data: bytes, factor: int) -> np.ndarray:
    import io

    image = Image.open(io.BytesIO(data))
    image.draft("L", (image.width // factor, image.height // factor))
    return np.asarray(image.convert("L"))


DECODERS = {
    "cv2 full colour": lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR),
    "cv2 full grey": lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_GRAYSCALE),
    "cv2 IMREAD_REDUCED_GRAYSCALE_2": lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_2),
    "cv2 IMREAD_REDUCED_GRAYSCALE_4": lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_4),
    "cv2 IMREAD_REDUCED_GRAYSCALE_8": lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8),
    "simplejpeg grey": lambda b: simplejpeg.decode_jpeg(b, colorspace="GRAY"),
    "simplejpeg grey 1/2 (DCT)": lambda b: _simplejpeg_scaled(b, 2),
    "simplejpeg grey 1/4 (DCT)": lambda b: _simplejpeg_scaled(b, 4),
    "PIL draft grey 1/2 (DCT)": lambda b: _pil_draft(b, 2),
    "PIL draft grey 1/4 (DCT)": lambda b: _pil_draft(b, 4),
    "cv2 full grey + resize 1/4 (INTER_AREA)": lambda b: cv2.resize(
        cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_GRAYSCALE), None, fx=0.25, fy=0.25,
        interpolation=cv2.INTER_AREA),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    photos = make_photos(args.photos)
    mean_mb = sum(map(len, photos)) / len(photos) / 1e6
    timings = {name: float("inf") for name in DECODERS}
    shapes = {}
    for _ in range(args.repeat):
        for name, decode in DECODERS.items():  # interleaved, so machine noise hits every decoder alike
            start = time.perf_counter()
            for data in photos:
                shapes[name] = decode(data).shape
            timings[name] = min(timings[name], (time.perf_counter() - start) / len(photos) * 1000)
    base = timings["cv2 full grey"]
    print(f"{len(photos)} phone photos of 12 MP, {mean_mb:.1f} MB mean; one core, best of {args.repeat}")
    print(f"{'decoder':42s} {'ms/photo':>9s} {'x full grey':>12s}  output")
    for name, ms in timings.items():
        print(f"{name:42s} {ms:9.1f} {ms / base:12.2f}  {shapes[name][1]}x{shapes[name][0]}")


if __name__ == "__main__":
    main()
