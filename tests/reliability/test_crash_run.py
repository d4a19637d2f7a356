"""The short crash run of CI: 20 rounds of `kill -9` of `pyblob serve --workers 2` under boto3
traffic (tests/crashrun.py). Nothing acknowledged may be lost, nothing may read back in a state no
operation made, fsck must find nothing before and after gc. scripts/crashrun runs the long one."""

from __future__ import annotations

from pathlib import Path

import pytest
from crashrun import CrashRun
from processes import isolate_from_aws

ROUNDS = 20


@pytest.fixture(autouse=True)
def _no_machine_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def test_twenty_kills_under_traffic_lose_nothing_acknowledged(tmp_path: Path) -> None:
    result = CrashRun(tmp_path, workers=2, clients=3, seed=20261206).run(ROUNDS)
    print(result.summary())
    assert result.rounds == ROUNDS
    assert result.acknowledged > ROUNDS and result.keys_checked > ROUNDS  # the run did something
    assert result.lost == [] and result.wrong == [] and result.errors == []
    assert result.fsck_problems == 0 and result.fsck_after_gc == 0
