"""S3 error codes are a registry: every code written in the web layers exists, has a status, and every
engine error answers as a deliberate S3 code (never a 500 it is not meant to be)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from engine_errors import SERVER_SIDE, class_id, engine_error_classes, instance_of

from objstore.errors import StoreError
from s3api.errors import ENGINE_CODES, S3Code, S3Error, from_store_error, s3_code_of

ROOT = Path(__file__).resolve().parents[2]
WEB_LAYERS = ("s3api", "shortlinks", "pyblob")
ENGINE_CLASSES = engine_error_classes()
MEANT_TO_FAIL = {cls: S3Code[code] for cls, (code, _) in SERVER_SIDE.items()}  # and what they answer


def sources() -> list[Path]:
    return sorted(p for layer in WEB_LAYERS for p in (ROOT / layer).rglob("*.py"))


def code_references(tree: ast.AST) -> list[ast.Attribute]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "S3Code"
    ]


def s3_error_calls(tree: ast.AST) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "S3Error"
    ]


def test_every_code_has_an_error_status() -> None:
    assert all(400 <= code.status <= 599 and code.message for code in S3Code)
    assert S3Code.NoSuchKey.status == 404 and S3Code.NoSuchKey.message == "The specified key does not exist."
    assert S3Code.InvalidArgument.message == "InvalidArgument"  # no fixed message: the code itself


def test_an_error_takes_a_registered_code_only() -> None:
    with pytest.raises(TypeError):
        S3Error("NoSuchKey")  # type: ignore[arg-type]
    error = S3Error(S3Code.SlowDown)
    assert (error.code, error.status, error.message) == ("SlowDown", 503, "Please reduce your request rate.")


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_code_written_is_registered(path: Path) -> None:
    """`S3Code.Typo` would be an AttributeError (a 500) on the request that reaches it: none exists."""
    tree = ast.parse(path.read_text(), str(path))
    unknown = [
        f"line {n.lineno}: S3Code.{n.attr}"
        for n in code_references(tree)
        if n.attr not in S3Code.__members__ and n.attr not in ("status", "message", "name", "value")
    ]
    assert not unknown


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_s3_error_names_its_code(path: Path) -> None:
    """Each `S3Error(...)` is given an `S3Code.<member>`, or (translating an engine error) `s3_code_of`."""
    tree = ast.parse(path.read_text(), str(path))
    loose = []
    for call in s3_error_calls(tree):
        first = call.args[0] if call.args else None
        named = isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name) and first.value.id == "S3Code"
        mapped = isinstance(first, ast.Call) and isinstance(first.func, ast.Name) and first.func.id == "s3_code_of"
        if not (named or mapped):
            loose.append(f"line {call.lineno}: {ast.unparse(call)[:80]}")
    assert not loose


def test_the_engine_errors_are_found() -> None:
    names = {cls.__name__ for cls in ENGINE_CLASSES}
    assert {
        "NoSuchKey",
        "DeleteMarkerIsCurrent",
        "ChunkMissing",
        "OffsetMismatch",
        "UploadBusy",
        "TooManyUploads",
    } <= names


@pytest.mark.parametrize("cls", ENGINE_CLASSES, ids=class_id)
def test_every_engine_error_has_a_deliberate_s3_code(cls: type[StoreError]) -> None:
    assert cls.code in ENGINE_CODES or cls.code in S3Code.__members__, f"{cls.code} is neither S3's nor mapped"
    code = s3_code_of(cls)
    expected = next((want for base, want in MEANT_TO_FAIL.items() if cls is base), None)
    if expected is not None:
        assert code is expected
    else:
        assert code.status < 500, f"{cls.__name__} would answer {code.name} {code.status}"
    error = from_store_error(instance_of(cls))
    assert (error.code, error.status) == (code.name, code.status)


def test_engine_codes_map_only_codes_that_are_not_s3s() -> None:
    used = {cls.code for cls in ENGINE_CLASSES}
    assert set(ENGINE_CODES) <= used  # no stale entries
    assert not set(ENGINE_CODES) & set(S3Code.__members__)  # an S3 code answers as itself
