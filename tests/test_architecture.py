"""The rules of docs/architecture.md, checked on the source: imports flow one way with no cycle,
`lmdb` is imported by one module, and each table's name is written in one engine module."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from objstore import store
from pyblob import ratebuckets

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("objstore", "s3api", "shortlinks", "pyblob")
# what each package may import of the others (docs/architecture.md, "Layers")
MAY_IMPORT = {
    "objstore": {"objstore"},
    "s3api": {"objstore", "s3api"},
    "shortlinks": {"objstore", "s3api", "shortlinks"},
    "pyblob": set(PACKAGES),
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The project modules `name` imports, type-only imports included. `from pkg import sub` is an
    import of the submodule; of the package only when a name is not a submodule."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            subs = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known]
            yield from subs
            if len(subs) < len(node.names) and target in known:
                yield target


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imports_of(name, path, known)) - {name} for name, path in known.items()}


def test_each_layer_imports_only_the_layers_below(graph: dict[str, set[str]]) -> None:
    wrong = [
        f"{name} imports {dep}"
        for name, deps in graph.items()
        for dep in deps
        if dep.split(".")[0] not in MAY_IMPORT[name.split(".")[0]]
    ]
    assert wrong == []


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    """Depth-first search for a back edge; the cycle found is named in the failure."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = "open"
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                return [*path[path.index(dep) :], dep] if dep in path else [name, dep]
            if dep not in state and (cycle := visit(dep, [*path, dep])):
                return cycle
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state:
            assert visit(name, [name]) is None


def test_only_the_lmdb_backend_imports_lmdb() -> None:
    importers = {name for name, path in modules().items() if "lmdb" in imports_of_external(path)}
    assert importers == {"objstore.meta.lmdb"}


def test_only_the_postgresql_backend_imports_psycopg() -> None:
    external = {name: imports_of_external(path) for name, path in modules().items()}
    importers = {name for name, found in external.items() if found & {"psycopg", "psycopg_pool"}}
    assert importers == {"objstore.meta.postgres"}


def test_in_the_engine_only_the_s3_chunk_store_imports_boto3() -> None:
    """The engine reaches S3 in one module; the importer of `pyblob import s3` is the CLI's business."""
    external = {name: imports_of_external(path) for name, path in modules().items()}
    importers = {name for name, found in external.items() if found & {"boto3", "botocore"}}
    assert {name for name in importers if name.startswith("objstore")} == {"objstore.chunks.s3"}


def imports_of_external(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules_naming(value: str, packages: tuple[str, ...]) -> set[str]:
    """The modules of `packages` with `value` as a string constant."""
    return {
        name
        for name, path in modules().items()
        if name.split(".")[0] in packages
        and any(
            isinstance(node, ast.Constant) and node.value == value for node in ast.walk(ast.parse(path.read_text()))
        )
    }


# Modules where a table's name stands for something else: the chunk files' directory.
NOT_A_TABLE = {"chunks": {"objstore.chunks.localdir"}}


@pytest.mark.parametrize("table", [*store.TABLES, *store.VOLATILE_TABLES])
def test_each_engine_table_is_named_in_one_module(table: str) -> None:
    """Its owner's: every other engine module reaches the table through the owner's functions."""
    owners = modules_naming(table, ("objstore",)) - NOT_A_TABLE.get(table, set())
    assert len(owners) == 1, owners


def test_the_rate_limit_buckets_are_named_in_one_module() -> None:
    assert ratebuckets.TABLES == ("rate_buckets",)
    assert modules_naming("rate_buckets", PACKAGES) == {"pyblob.ratebuckets"}


def test_the_stores_know_nothing_of_the_engine_above_them(graph: dict[str, set[str]]) -> None:
    """A metadata or chunk store backend may use the engine's config, errors and durability helpers, nothing more."""
    allowed = ("objstore.meta", "objstore.chunks", "objstore.config", "objstore.errors", "objstore.durability")
    wrong = [
        f"{name} imports {dep}"
        for name, deps in graph.items()
        if name.startswith(("objstore.meta", "objstore.chunks"))
        for dep in deps
        if not dep.startswith(allowed)
    ]
    assert wrong == []
