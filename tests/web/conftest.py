"""What the web tests share: logging a TestClient in, the app served by a real uvicorn on a free port."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from bench.servers import free_port

PASSWORD = "correct horse battery"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def log_in(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Logs `client` in as `name`; the session's CSRF token."""
    page = client.get("/login")
    response = client.post("/login", data={"name": name, "password": password, "csrf": csrf_of(page.text), "next": "/"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/upload").text)


class Clients:
    """The app of a test module with one logged-in client per user, made when first asked for."""

    def __init__(self, app: Starlette, tmp) -> None:
        self.app, self.tmp = app, tmp
        self.reviews = app.state.reviews
        self.clients: dict[str, tuple[TestClient, str]] = {}

    def client(self, name: str) -> tuple[TestClient, str]:
        """A logged-in client of `name` and its CSRF token (one per user, kept for the module)."""
        if name not in self.clients:
            client = TestClient(self.app)
            self.clients[name] = (client, log_in(client, name))
        return self.clients[name]


@contextmanager
def app_with_users(tmp: Path, users: dict[str, str], kind: type[Clients] = Clients) -> Iterator[Clients]:
    """The app on a fresh database and photo store in `tmp`, with `users` (name -> role), running (its lifespan) while
    in the block; its clients (of `kind`) closed after."""
    from ocr.db.store import default_url
    from ocr.review.accounts import hash_password
    from ocr.web.app import create_app

    app = create_app(default_url(tmp / "results.db"), tmp / "store", secret="test-secret")
    with TestClient(app):
        for name, role in users.items():
            app.state.reviews.add_user(name, role, hash_password(PASSWORD))
        clients = kind(app, tmp)
        yield clients
        for client, _ in clients.clients.values():
            client.close()


@contextmanager
def served(app: Starlette) -> Iterator[str]:
    """`app` served by uvicorn in a thread (one event loop, as `formc serve` runs it) while in the block; its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
