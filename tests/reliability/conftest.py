"""The fixtures of tests/reliability."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faultrig import Rig, serve
from processes import isolate_from_aws


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    rig = Rig(tmp_path_factory.mktemp("faults"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_from_aws(monkeypatch, rig.root)
        yield from serve(rig)
