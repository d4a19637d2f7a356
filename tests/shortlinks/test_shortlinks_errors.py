"""Every engine error reaches the short links edge with a status chosen for it: none falls back to 500."""

from __future__ import annotations

import pytest
from engine_errors import SERVER_SIDE, class_id, engine_error_classes, instance_of

from objstore.errors import StorageIOError, StoreError
from shortlinks.errors import STATUS, from_store

ENGINE_CLASSES = engine_error_classes()
MEANT_TO_FAIL = {cls: status for cls, (_, status) in SERVER_SIDE.items()}  # ours, a retry, or no room


@pytest.mark.parametrize("cls", ENGINE_CLASSES, ids=class_id)
def test_every_engine_error_has_a_deliberate_status(cls: type[StoreError]) -> None:
    assert cls.code in STATUS, f"{cls.__name__} ({cls.code}) has no status"
    expected = next((want for base, want in MEANT_TO_FAIL.items() if cls is base), None)
    status = STATUS[cls.code]
    assert status == expected if expected is not None else 400 <= status < 500
    error = from_store(instance_of(cls))
    assert error.status == status
    assert error.detail and (
        status < 500
        or error.detail in ("internal error", "the storage could not complete this just now; please retry")
        or (status == 507 and error.detail == str(instance_of(cls)))  # the engine's words: what is full
        or (cls is StorageIOError and error.detail == str(instance_of(cls)))  # the engine's words: the disk failed
    )


def test_no_status_for_a_code_the_engine_does_not_have() -> None:
    assert set(STATUS) == {cls.code for cls in ENGINE_CLASSES}


def test_a_401_challenges_for_a_bearer_token() -> None:
    from objstore.errors import InvalidToken

    assert from_store(InvalidToken("the token is not valid")).headers == {"www-authenticate": "Bearer"}
