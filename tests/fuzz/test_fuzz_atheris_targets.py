"""The atheris targets (`atheris_fuzz.py`, which scripts/fuzz runs for long) on their seeds and on random
bytes: the harness is known to run before a long run relies on it, and CI fuzzes the byte-level
parsers through it a little more."""

from __future__ import annotations

import atheris_fuzz
import pytest
from fuzzing import budget
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize("name", sorted(atheris_fuzz.TARGETS))
def test_a_target_runs_its_seeds(name: str) -> None:
    assert atheris_fuzz.SEEDS[name], f"{name} has no seed"
    for seed in atheris_fuzz.SEEDS[name]:
        atheris_fuzz.TARGETS[name](seed)


@budget(100)
@given(name=st.sampled_from(sorted(atheris_fuzz.TARGETS)), data=st.binary(max_size=400))
def test_a_target_takes_any_bytes(name: str, data: bytes) -> None:
    atheris_fuzz.TARGETS[name](data)
