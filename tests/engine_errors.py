"""Every error class the storage engine defines, for the tests that check each edge maps all of them.

The classes are found, not listed: every module of the `objstore` package is imported and the
subclasses of `StoreError` are walked recursively, so an error added anywhere in the engine (not only
in objstore/errors.py) is checked by the edges' tests the day it appears.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import objstore
from objstore.errors import (
    ChunkMissing,
    ChunkStoreUnavailable,
    FormatError,
    MetadataMapFull,
    SealingKeyError,
    StorageFull,
    StorageIOError,
    StoreError,
)

# The engine errors that are the server's fault (or its storage's), not the request's, and what each
# edge answers for them: the S3 code, the REST status. Every other engine error answers a 4xx.
SERVER_SIDE = {
    StoreError: ("InternalError", 500),  # a failure with no better name ("no free link id")
    FormatError: ("InternalError", 500),  # a record this code cannot read
    ChunkMissing: ("ServiceUnavailable", 503),  # a chunk collected while an upload ran: retry
    ChunkStoreUnavailable: ("ServiceUnavailable", 503),  # the shared chunk store failed: retry
    StorageFull: ("StorageFull", 507),  # the disk has no room: deleting makes some
    MetadataMapFull: ("StorageFull", 507),  # the LMDB map is at its cap
    StorageIOError: ("StorageIOError", 503),  # the disk failed a read or write (EIO): retry later
    SealingKeyError: ("InternalError", 500),  # a node set up with another sealing key than the store's
}


def engine_error_classes() -> list[type[StoreError]]:
    """StoreError and every subclass of it in the objstore package, by qualified name."""
    for module in pkgutil.walk_packages(objstore.__path__, "objstore."):
        importlib.import_module(module.name)
    found: list[type[StoreError]] = []
    todo: list[type[StoreError]] = [StoreError]
    while todo:
        cls = todo.pop()
        if cls.__module__.split(".")[0] == "objstore" and cls not in found:
            found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def instance_of(cls: type[StoreError]) -> StoreError:
    """An instance, whatever the class's constructor asks for (text, or a time for `last_modified`)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    args = [0.0 if "modified" in p.name else "x" for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    return cls(*args) if args else cls("x")


def class_id(cls: type[StoreError]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
