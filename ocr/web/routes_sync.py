"""POST /api/sync: an office pushes a bundle (`formc sync push`, or any client posting the .zip as the body) and the
centre imports it as `formc sync import` does. The bundle's signature is the credential: no log-in and no cookie,
only a bundle signed by a key the centre trusts for its office is imported (a replay of one changes nothing). The
answer is JSON: the import's report, or 403 (`unknown_signer`, `bad_signature`) or 422 with the reason and its text in
the request's language."""

from __future__ import annotations

import tempfile
from dataclasses import asdict

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ocr.review.sync.bundle import Refusal, RefusalCode
from ocr.review.sync.merge import import_bundle
from ocr.web.i18n import translate

IN_MEMORY = 8 * 2**20  # a larger body is spooled to a temporary file while it is checked and merged
FORBIDDEN = (RefusalCode.UNKNOWN_SIGNER, RefusalCode.BAD_SIGNATURE)


async def sync_bundle(request: Request) -> Response:
    with tempfile.SpooledTemporaryFile(max_size=IN_MEMORY) as body:
        async for chunk in request.stream():
            body.write(chunk)
        report = await run_in_threadpool(import_bundle, request.app.state.store, request.app.state.photos, body)
    if isinstance(report, Refusal):
        return JSONResponse({"reason": report.code, "message": translate(request, report.message, **report.params)},
                            status_code=403 if report.code in FORBIDDEN else 422)
    return JSONResponse(asdict(report))
