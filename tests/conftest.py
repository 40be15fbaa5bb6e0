"""Shared fixtures. `shared_dir` is ../shared beside the checkout: tests that need it skip without it."""

from __future__ import annotations

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
