"""`formc synth`: synthetic filled forms photographed, one folder per TPS with its ground truth.

Each TPS draws from its own random stream (`SeedSequence([seed, index, template])`), so a TPS's
photos and truth depend only on the seed, the template and its index, never on how many workers
made them.
"""

from __future__ import annotations

import json
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ocr.synth.camera import PROFILES, CameraProfile, PhotoPlan, photograph, plan_photo
from ocr.synth.handwriting import GlyphBank, load_bank
from ocr.synth.ink import WriterStyle, WrittenPage, write_page
from ocr.synth.tally import TallyStyle
from ocr.synth.values import make_inconsistent, realistic_values
from ocr.templates.catalog import get_template
from ocr.templates.model import FormTemplate, rect_corners
from ocr.templates.render import MM_PER_INCH, render_page


@dataclass(frozen=True)
class SynthJob:
    template_id: str
    count: int
    out_dir: Path
    seed: int = 0
    profile: str = "phone"
    handwriting: tuple[Path, ...] = ()
    inconsistent: float = 0.0
    workers: int = 1
    first_index: int = 1
    style: tuple[tuple[str, object], ...] = ()  # WriterStyle fields forced for every TPS, e.g. (("blocky", 1.0),)
    megapixels: float | None = None  # every photo this size instead of the profile's range (benchmarks: 12 MP)
    tally_practice: bool = False  # tally grids as training sheets (ocr/synth/tally.py), not the row sums' marks

    def inconsistent_indices(self) -> set[int]:
        """Exactly round(fraction x count) TPS, chosen by the seed."""
        n = round(self.inconsistent * self.count)
        chosen = np.random.default_rng([self.seed, 0x1C0]).choice(self.count, size=n, replace=False)
        return {self.first_index + int(i) for i in chosen}


@lru_cache(maxsize=12)
def _blank_page(template_id: str, page_number: int, scale: float) -> np.ndarray:
    page = render_page(get_template(template_id), page_number, scale * MM_PER_INCH)
    page.setflags(write=False)  # shared by every TPS drawn at this scale
    return page


def _render_scale(px_per_mm: float) -> float:
    """Draw the page a little finer than the photo sees it (0.5 px/mm steps, so blank pages are reused)."""
    return float(np.clip(np.ceil(px_per_mm * 1.25 * 2) / 2, 2.0, 8.0))


def _boxes_px(template: FormTemplate, page_number: int, project: Callable[[np.ndarray], np.ndarray]) -> dict:
    out = {}
    for f in template.page(page_number).fields:
        corners = np.concatenate([rect_corners(box) for box in f.boxes_mm])
        out[f.id] = np.round(project(corners), 2).reshape(len(f.boxes_mm), 4, 2).tolist()
    return out


def tps_stream(seed: int, index: int, template: FormTemplate) -> np.random.Generator:
    """The random stream of one TPS: its values, hand and photos depend on nothing else."""
    # The template is part of the stream so that one seed gives unrelated photos for different templates.
    return np.random.default_rng(np.random.SeedSequence([seed, index, zlib.crc32(template.id.encode())]))


def write_sheet(template: FormTemplate, page_number: int, values: dict[str, int], style: WriterStyle,
                tally_style: TallyStyle, bank: GlyphBank, plan: PhotoPlan, rng: np.random.Generator
                ) -> tuple[WrittenPage, float]:
    """The page filled in, drawn a little finer than `plan` photographs it; and that scale, px/mm."""
    scale = _render_scale(plan.px_per_mm(template.page_size_mm))
    return write_page(_blank_page(template.id, page_number, scale), template.page(page_number), values, scale, style,
                      bank, rng, tally_style), scale


def sheet_photos(template: FormTemplate, index: int, seed: int, profile: CameraProfile, bank: GlyphBank,
                 shots: int = 2) -> list[tuple[int, list[bytes]]]:
    """(page number, JPEGs) for each page of a TPS filled once and photographed `shots` times, each with a camera plan
    of its own (pose, frame, bend, light, blur, noise, JPEG quality): the same sheets re-photographed. No truth."""
    rng = tps_stream(seed, index, template)
    values, style, tally_style = realistic_values(template, rng), WriterStyle.random(rng), TallyStyle.random(rng)
    out = []
    for page in template.pages:
        plans = [plan_photo(profile, template.page_size_mm, rng) for _ in range(shots)]
        finest = max(plans, key=lambda plan: plan.px_per_mm(template.page_size_mm))  # drawn once, fine enough for all
        written, scale = write_sheet(template, page.number, values, style, tally_style, bank, finest, rng)
        out.append((page.number, [photograph(written.image, scale, template.page_size_mm, plan, profile, rng)[0]
                                  for plan in plans]))
    return out


def synthesize_tps(template: FormTemplate, index: int, job: SynthJob, bank: GlyphBank, inconsistent: bool) -> dict:
    """Write one TPS folder (page-<n>.jpg + truth.json) and return its truth."""
    rng = tps_stream(job.seed, index, template)
    profile: CameraProfile = PROFILES[job.profile]
    if job.megapixels is not None:
        profile = replace(profile, megapixels=(job.megapixels, job.megapixels))
    values = realistic_values(template, rng)
    slip = None
    if inconsistent:
        values, slip = make_inconsistent(template, values, rng)
    style = replace(WriterStyle.random(rng), **dict(job.style))
    tally_style = replace(TallyStyle.random(rng), practice=job.tally_practice)
    folder = job.out_dir / f"tps-{index:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict = {"template": template.id, "submission": folder.name, "pages": {}, "fields": values,
                   "consistent": slip is None, "slip": slip, "seed": job.seed, "index": index,
                   "profile": profile.name, "handwriting": bank.source, "ink": style.ink, "filler": style.filler,
                   "glyphs": {}, "bubbles": {}, "tally": {}, "photos": {}}
    for page in template.pages:
        plan = plan_photo(profile, template.page_size_mm, rng)
        written, scale = write_sheet(template, page.number, values, style, tally_style, bank, plan, rng)
        jpeg, geometry = photograph(written.image, scale, template.page_size_mm, plan, profile, rng)
        name = f"page-{page.number}.jpg"
        (folder / name).write_bytes(jpeg)
        truth["pages"][str(page.number)] = name
        truth["glyphs"].update(written.glyphs)
        truth["bubbles"].update(written.bubbles)
        truth["tally"].update({f: t.to_json() for f, t in written.tallies.items()})
        truth["photos"][str(page.number)] = {
            "file": name, "width": geometry.width, "height": geometry.height,
            "exif_orientation": geometry.exif_orientation, "page_fraction": round(geometry.page_fraction(), 4),
            "homography_mm_to_px": [list(row) for row in geometry.homography], "bend": list(geometry.bend),
            "corners_px": np.round(geometry.page_to_photo(rect_corners((0.0, 0.0, *template.page_size_mm))), 2).tolist(),
            "markers_px": np.round(geometry.page_to_photo(np.array(template.markers.centres_mm())), 2).tolist(),
            "boxes_px": _boxes_px(template, page.number, geometry.page_to_photo),
        }
    (folder / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


_worker_bank: GlyphBank | None = None


def _init_worker(bank: GlyphBank) -> None:
    global _worker_bank
    _worker_bank = bank


def _run_one(job: SynthJob, index: int, inconsistent: bool) -> str:
    truth = synthesize_tps(get_template(job.template_id), index, job, _worker_bank, inconsistent)
    return truth["submission"]


def synthesize(job: SynthJob) -> Iterator[str]:
    """Make `job.count` TPS folders under `job.out_dir`, yielding each folder name as it is done."""
    if job.profile not in PROFILES:
        raise ValueError(f"unknown profile {job.profile!r}; choose from {', '.join(PROFILES)}")
    get_template(job.template_id)  # fail fast on an unknown id
    indices = range(job.first_index, job.first_index + job.count)
    bad = job.inconsistent_indices()
    bank = load_bank(list(job.handwriting) or None)  # parsed once, handed to each worker
    if job.workers <= 1:
        _init_worker(bank)
        for i in indices:
            yield _run_one(job, i, i in bad)
        return
    with ProcessPoolExecutor(job.workers, initializer=_init_worker, initargs=(bank,)) as pool:
        futures = [pool.submit(_run_one, job, i, i in bad) for i in indices]
        for future in futures:
            yield future.result()
