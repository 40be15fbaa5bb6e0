"""ASGI middleware of the review app: request body limit, security headers, server time per response."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocr.web.i18n import translate

# Pages load only this app's own files: no inline script, no other origin, no framing.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Answers 413 to a request body over `max_bytes`: at once from Content-Length, else as soon as the
    streamed body passes it, so a 200 MB upload is never read, parsed or spooled to disk."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = PlainTextResponse(translate(Request(scope), "The upload is over %(mb)s MB: send fewer or smaller "
                                                "photos.", mb=self.max_bytes // 2**20),
                                      status_code=413, headers={"Connection": "close"})
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await too_large(scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await too_large(scope, receive, send)


class _ResponseHeaders:
    """Adds headers to every HTTP response as it starts; a subclass says which (`extra`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def extra(self, started: float, present: set[bytes]) -> list[tuple[bytes, bytes]]:
        """Headers to add, given when the request came in (perf_counter) and the names already set (lower case)."""
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += self.extra(started, {k.lower() for k, _ in headers})
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class SecurityHeaders(_ResponseHeaders):
    """CSP, no MIME sniffing, no framing, no referrer leaking ids, no caching of pages by shared caches."""

    HEADERS = {b"content-security-policy": CSP.encode(), b"x-content-type-options": b"nosniff",
               b"x-frame-options": b"DENY", b"referrer-policy": b"same-origin", b"cache-control": b"no-store"}

    def extra(self, started: float, present: set[bytes]) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in self.HEADERS.items() if k not in present]


class ServerTiming(_ResponseHeaders):
    """`Server-Timing: app;dur=<ms>`: time from the request to the response's first byte (bench/web_bench.py reads it)."""

    def extra(self, started: float, present: set[bytes]) -> list[tuple[bytes, bytes]]:
        return [(b"server-timing", f"app;dur={(time.perf_counter() - started) * 1000:.1f}".encode())]
