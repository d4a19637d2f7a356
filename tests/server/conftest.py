"""Fixtures of the server tests beyond tests/conftest.py's."""

from __future__ import annotations

import json

import pytest
from processes import RunPyblob


@pytest.fixture
def alice(run_pyblob: RunPyblob) -> dict[str, str]:
    """A user made with `pyblob user add alice --json`: `user`, `access_key`, `secret_key`, `token`."""
    made = run_pyblob("user", "add", "alice", "--json")
    assert made.returncode == 0, made.stderr
    creds: dict[str, str] = json.loads(made.stdout)
    return creds
