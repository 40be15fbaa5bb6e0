"""Throwaway redis-server and PostgreSQL servers from the Debian packages, and `formc worker` processes, for the
tests and the benches.

Each is a context manager yielding a `Server` (its URL; stop and start for outages) and removing everything when
it ends; `ServerUnavailable` says why one cannot be started (the tests skip with that message).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class ServerUnavailable(RuntimeError):
    """The server's package is missing or it would not start: the message says which and what to install."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1 below the kernel's ephemeral range: a client retrying a stopped server on a port in
    that range can connect to itself, hold the port, and keep the restarted server from binding it (an outage test
    then never ends)."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.Random().sample(range(10000, max(low, 10100)), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServerUnavailable(f"no free TCP port between 10000 and {low}")


@dataclass
class Server:
    """A running throwaway server: `url` to reach it; `stop()` and `start()` take it down and bring it back on the same
    address with its data (an outage)."""

    url: str
    stop: Callable[[], None]
    start: Callable[[], None]


@contextmanager
def redis_server() -> Iterator[Server]:
    """A throwaway redis-server on a free port, its queue kept in an append-only file (as in production: a restart
    loses no queued submission)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailable("redis-server not found: apt-get install redis-server")
    import redis

    port, root = free_port(), Path(tempfile.mkdtemp(prefix="formc-redis-"))
    running: list[subprocess.Popen] = []

    def start() -> None:
        running.append(subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root),
                                         "--save", "", "--appendonly", "yes"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            if running[-1].poll() is not None:
                raise ServerUnavailable(f"redis-server exited at start (port {port} taken?)")
            try:
                if client.ping() is True:  # PONG from the server, not some other listener
                    return
            except (redis.ConnectionError, redis.BusyLoadingError):
                pass
            time.sleep(0.1)
        raise ServerUnavailable("redis-server did not answer within 10 s")

    def stop() -> None:
        server = running.pop()
        server.terminate()  # SIGTERM: redis writes the append-only file out before exiting
        server.wait(10)

    try:
        start()
        yield Server(f"redis://127.0.0.1:{port}/0", stop, start)
    finally:
        while running:
            stop()
        shutil.rmtree(root, ignore_errors=True)


def _postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL server's bin/ (package postgresql), or None."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb") if p.parent.joinpath("pg_ctl").exists()]
    return max(found, key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0, default=None)


@contextmanager
def postgres_server() -> Iterator[Server]:
    """A fresh database on a throwaway PostgreSQL server (socket only, no fsync: the data is thrown away)."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        raise ServerUnavailable("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): "
                                "apt-get install postgresql")
    as_server_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="formc-postgres-"))
    if os.geteuid() == 0:
        # initdb refuses to run as root: the cluster belongs to the unprivileged `postgres` user.
        try:
            shutil.chown(root, "postgres", "postgres")
        except LookupError:
            shutil.rmtree(root)
            raise ServerUnavailable("running as root and there is no `postgres` user to run the PostgreSQL server as")
        as_server_user = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"
    port = free_port()
    options = f"-c listen_addresses='' -k {root} -p {port} -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
    pg_ctl = [*as_server_user, str(bin_dir / "pg_ctl"), "-D", str(data)]

    def run(name: str, step: list[str]) -> None:
        # cwd: the server user may not be allowed into the checkout.
        done = subprocess.run(step, cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip() + (f"\n{log.read_text()}" if log.exists() else "")
            raise ServerUnavailable(f"could not start a PostgreSQL server ({name} failed): {detail[-1500:]}")

    def start() -> None:
        run("pg_ctl start", [*pg_ctl, "-l", str(log), "-o", options, "-w", "-t", "30", "start"])

    def stop() -> None:
        run("pg_ctl stop", [*pg_ctl, "-m", "fast", "-w", "stop"])  # fast: open connections are cut, as in a crash

    try:
        run("initdb", [*as_server_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                       "-E", "UTF8", "--no-locale", "-N"])
        start()
        run("createdb", [*as_server_user, str(bin_dir / "createdb"), "-h", str(root), "-p", str(port), "-U", "postgres",
                         "formc_test"])
        yield Server(f"postgresql+psycopg://postgres@/formc_test?host={root}&port={port}", stop, start)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], cwd=root, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


REPO = Path(__file__).resolve().parents[1]


def start_worker(broker: str, db_url: str, store: Path, log: Path, redelivery_after_s: float = 600.0) -> subprocess.Popen:
    """A `formc worker --concurrency 1` of this checkout, output to `log`. Its own session: a SIGKILL of its group
    takes the worker and its pool process at once, as a machine dying would."""
    return subprocess.Popen([sys.executable, "-m", "cli", "worker", "--broker", broker, "--db", db_url, "--store",
                             str(store), "--concurrency", "1", "--redelivery-after", str(redelivery_after_s)],
                            cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
