"""Uploading a TPS's photos and waiting for their read (`ocr/web/jobs.py` reads them).

The TPS's place is picked, never typed: province -> kabupaten/kota -> kecamatan -> kelurahan/desa selects filled from
the region registry (`/regions?parent=CODE`, `ocr/web/static/regions.js`), a TPS number and the election.
"""

from __future__ import annotations

import re
import time

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from ocr.db.regions import Regions, plain_code
from ocr.reader.reasons import ReasonCode, Refusal
from ocr.record import ELECTIONS, TpsIdentity
from ocr.review.accounts import User
from ocr.review.errors import ReviewError
from ocr.review.intake import Stored, intake, photo_name
from ocr.run.places import identity
from ocr.web.auth import guard
from ocr.web.i18n import translate
from ocr.web.pages import UPLOADERS, explained, flash, read_photo, render, reviews_of

MAX_PHOTOS = 6  # the pages of one TPS (3 for the KWK forms, 2 for PPWP) and a few retakes
MAX_UPLOAD_BYTES = MAX_PHOTOS * 20 * 2**20  # refused before it is read (phone JPEGs are 3-8 MB)
SUBMISSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,60}(/[A-Za-z0-9][A-Za-z0-9._ -]{0,60}){0,3}")


def registry(request: Request) -> Regions:
    return request.app.state.regions


@guard(*UPLOADERS)
async def regions(request: Request) -> Response:
    """The regions one level below `parent` (none: the provinces), for the upload form's pickers."""
    parent = request.query_params.get("parent", "")
    if parent and plain_code(parent) is None:
        return JSONResponse([], status_code=400)
    return JSONResponse([{"code": r.code, "name": r.name} for r in registry(request).children(parent)])


def place_of(request: Request, form) -> TpsIdentity | Refusal | None:
    """The place the pickers chose (None: no desa picked), or why it cannot be taken."""
    desa, tps, election = (str(form.get(key, "")).strip() for key in ("desa", "tps", "election"))
    if not desa:
        return None
    place = identity(desa, tps, election)
    if isinstance(place, TpsIdentity) and not registry(request).known_desa({place.desa}):
        return Refusal(ReasonCode.UNKNOWN_REGION, place.desa)
    return place


@guard(*UPLOADERS)
async def upload(request: Request) -> Response:
    reviews = reviews_of(request)
    user: User = request.state.user
    if request.method == "GET":
        return render(request, "upload.html", recent=reviews.uploaded_by(user), limits=(MAX_PHOTOS, MAX_UPLOAD_BYTES),
                      elections=ELECTIONS)

    def refuse(message: str, status: int) -> Response:  # the form again, as it was filled (but the photos)
        return render(request, "upload.html", status, error=message, recent=reviews.uploaded_by(user),
                      limits=(MAX_PHOTOS, MAX_UPLOAD_BYTES), name=name, elections=ELECTIONS, picked=picked)

    form = await request.form()
    picked = {key: str(form.get(key, "")).strip() for key in ("desa", "tps", "election")}
    name, place = str(form.get("submission", "")).strip(), place_of(request, form)
    if isinstance(place, Refusal):
        return refuse(translate(request, "Pick the TPS's kelurahan/desa from the lists, its TPS number and the "
                                "election: the region registry does not know this place."), 400)
    name = name or (f"{place.desa}/TPS-{place.tps:03d}" if place else "")  # the folder layout's name for a TPS
    files = [f for f in form.getlist("photos") if isinstance(f, UploadFile) and f.filename]
    if not SUBMISSION_NAME.fullmatch(name) or ".." in name:
        return refuse(translate(request, "Name the TPS like kab-bandung/kec-x/tps-001: letters, digits, '.', '_', '-', "
                                "up to 4 parts separated by '/'."), 400)
    if not files:
        return refuse(translate(request, "Choose the photos of the form's pages."), 400)
    if len(files) > MAX_PHOTOS:
        return refuse(translate(request, "At most %(count)s photos per TPS: send only the pages of this TPS.",
                                count=MAX_PHOTOS), 400)
    photos, taken = [], set()
    for f in files:
        data = await read_photo(request, f)
        if isinstance(data, tuple):
            return refuse(*data)
        photos.append((photo_name(f.filename, taken), request.app.state.photos.put(data)))
    try:
        found = intake(reviews, user, name, photos)
    except ReviewError as refusal:  # the photos of another TPS, or another operator's TPS to complete
        return refuse(explained(request, refusal), 409)
    if isinstance(found, Stored):  # the stored read stands: nothing is read twice
        reviews.record_upload(found.submission_id, user, [n for n, _ in photos])
        flash(request, translate(request, "These photos were uploaded before: here is their result."))
        return RedirectResponse(f"/submissions/{found.submission_id}", status_code=303)
    if found.kept:
        kept = ", ".join(n for n, _ in found.photos[:found.kept])
        flash(request, translate(request, "Read together with the photos uploaded before for this TPS: %(photos)s.",
                                 photos=kept))
    job_id = request.app.state.reader.submit(name, found.photos, user, found.replaces, place)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@guard(*UPLOADERS)
async def job(request: Request) -> Response:
    found = request.app.state.reader.job(request.path_params["job_id"])
    if found is None or found.owner != request.state.user.id:
        return PlainTextResponse(translate(request, "No such upload (uploads are kept an hour)."), status_code=404)
    if found.state == "done":
        return RedirectResponse(f"/submissions/{found.submission_id}", status_code=303)
    return render(request, "job.html", job=found, elapsed=time.time() - found.started,
                  ahead=request.app.state.reader.ahead(request.path_params["job_id"]))
