"""Shared fixtures. `shared_dir` is ../shared beside the checkout: tests that need it skip without it.

`postgres_url` starts a throwaway PostgreSQL server (Debian package postgresql) and skips without one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "forms").is_dir():
        pytest.skip("../shared (official forms, development data) is not beside this checkout")
    return SHARED


@pytest.fixture(scope="session")
def family_text() -> str:
    """The shipped family file, the boilerplate that validation tests mutate."""
    return (REPO / "templates_forms" / "c_hasil_2024.yaml").read_text()


def _postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL server's bin/ (package postgresql), or None."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb") if p.parent.joinpath("pg_ctl").exists()]
    return max(found, key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0, default=None)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A URL to a fresh database on a throwaway PostgreSQL server, started for this test session and stopped after."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql")
    as_server_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="formc-postgres-"))
    if os.geteuid() == 0:
        # initdb refuses to run as root: the cluster belongs to the unprivileged `postgres` user.
        try:
            shutil.chown(root, "postgres", "postgres")
        except LookupError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no `postgres` user to run the PostgreSQL server as")
        as_server_user = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # No TCP, only a socket in the private directory; no fsync: the data is thrown away.
    options = f"-c listen_addresses='' -k {root} -p {port} -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
    pg_ctl = [*as_server_user, str(bin_dir / "pg_ctl"), "-D", str(data)]
    steps = {"initdb": [*as_server_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                        "-E", "UTF8", "--no-locale", "-N"],
             "pg_ctl start": [*pg_ctl, "-l", str(log), "-o", options, "-w", "-t", "30", "start"],
             "createdb": [*as_server_user, str(bin_dir / "createdb"), "-h", str(root), "-p", str(port), "-U", "postgres",
                          "formc_test"]}
    try:
        for name, step in steps.items():
            # cwd: the server user may not be allowed into the checkout.
            run = subprocess.run(step, cwd=root, capture_output=True, text=True)
            if run.returncode != 0:
                detail = (run.stderr or run.stdout).strip() + (f"\n{log.read_text()}" if log.exists() else "")
                pytest.skip(f"could not start a PostgreSQL server ({name} failed): {detail[-1500:]}")
        yield f"postgresql+psycopg://postgres@/formc_test?host={root}&port={port}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], cwd=root, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
