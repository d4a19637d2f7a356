"""One `pyblob serve` for the whole isolation matrix (both of its modules), and the digest check.

The digest of every metadata row and chunk file is taken once alice's and mallory's data are in
place, and again after the server has stopped: any difference is a request of the matrix that
changed something although it was refused (the answers are checked case by case). Under xdist each
worker runs its own server and checks the cases it ran.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from botocore.client import BaseClient
from isolation_requests import capture_client
from isolation_site import Digest, Site, digest_changes, metadata_digest, running_site
from processes import isolate_from_aws


@pytest.fixture(scope="package")
def site_and_digest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Digest]]:
    root = tmp_path_factory.mktemp("isolation")
    with pytest.MonkeyPatch.context() as mp:
        isolate_from_aws(mp, root)
        with running_site(root) as site:
            before = metadata_digest(root / "data")
            yield site, before
        changes = digest_changes(before, metadata_digest(root / "data"))
    assert not changes, "refused requests changed the store:\n" + "\n".join(changes[:50])


@pytest.fixture(scope="package")
def site(site_and_digest: tuple[Site, Digest]) -> Site:
    return site_and_digest[0]


@pytest.fixture(scope="package")
def digest_before(site_and_digest: tuple[Site, Digest]) -> Digest:
    """The digest taken before the first case."""
    return site_and_digest[1]


@pytest.fixture(scope="package")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, trust_env=False) as client:
        yield client


@pytest.fixture(scope="package")
def capture(site: Site) -> Iterator[BaseClient]:
    client = capture_client(site.url)
    yield client
    client.close()
