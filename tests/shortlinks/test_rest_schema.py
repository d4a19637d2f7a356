"""schemathesis against the REST API's OpenAPI document, served by a real `pyblob serve`.

The document is the running server's `/openapi.json`. schemathesis calls every operation in it with
requests drawn from its schema (the coverage phase adds values at and past each bound, the fuzzing
phase random ones), as a caller with a valid bearer token, with none of ours (schemathesis's own
made-up ones, or none), and with one that does not exist. Its checks: no 5xx; each status, content
type, header and body as the document declares for that operation; requests the schema allows
accepted, requests it forbids refused with a 4xx; and a request without the token refused. On top,
every error here must be JSON (`{"detail", "request_id"}`). A fixed seed, derandomized generation and
a bounded number of examples: the same requests every run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from processes import RunPyblob, StartServer
from rest_helpers import NO_RATE_LIMITS, add_user
from schemathesis import Case, Response
from schemathesis.config import SchemathesisConfig

from shortlinks.rest_users import HIDDEN

# Nothing the server answered feeds the next requests (ids, times): the same requests every run.
SAME_INPUTS = {"extra-data-sources": {"responses": False}}
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 15,
        "generation": {
            "max-examples": 20,
            "deterministic": True,
            "database": "none",
            # An unknown query parameter is ignored, as pyBlobServer did (and a web UI's cache-busting
            # `?_=...` needs): not a request to refuse.
            "allow-extra-parameters": False,
        },
        # The scenarios of the stateful phase are a CLI feature; `parametrize` runs the other three.
        "phases": {
            "stateful": {"enabled": False},
            "coverage": SAME_INPUTS,
            "examples": SAME_INPUTS,
            "fuzzing": {**SAME_INPUTS, "error-feedback": {"enabled": False}},
        },
        "checks": {
            # A method a REST path does not take (PUT /upload) falls through to S3, which answers as it
            # does for any bucket it will not create, in XML (pyblob/app.py's catch-all): by design,
            # so no 405 for this check to find.
            "unsupported_method": {"enabled": False},
        },
    }
)
CALLERS = ["valid token", "no token", "unknown token"]


@dataclass
class Caller:
    """The bearer token a case is sent with; a call that rotates it hands on the new one."""

    token: str | None
    statuses: Counter[int] = field(default_factory=Counter)  # of the operations' own methods

    def provider(self) -> type[schemathesis.AuthProvider[str]]:
        """The token as schemathesis's auth, so that its cases without one (a 401 expected) go without."""
        caller = self

        class Token:
            def get(self, case: Case[Any], ctx: schemathesis.AuthContext) -> str | None:
                return caller.token

            def set(self, case: Case[Any], data: str, ctx: schemathesis.AuthContext) -> None:
                case.headers["Authorization"] = f"Bearer {data}"

        return Token

    def follow(self, response: Response) -> None:
        """After `POST /user/me/token` or `?function=change_token` only the new token works."""
        body = response.json() if response.status_code == 200 else None
        if isinstance(body, dict) and isinstance(body.get("token"), str) and body["token"] != HIDDEN:
            self.token = body["token"]


@pytest.fixture
def alice_token(run_pyblob: RunPyblob) -> str:
    return add_user(run_pyblob, "alice")


@pytest.fixture
def rest_api(request: pytest.FixtureRequest, caller: Caller, start_server: StartServer) -> schemathesis.BaseSchema:
    """The document of a real server. Rate limits off: the hundreds of requests from one address and
    one user here would meet the REST defaults (10/s, bursts of 100) and answer 429 instead.

    It asks for `caller` so that pytest parametrizes the test by it: schemathesis requests the test's
    own fixtures only once the test runs, too late for a parametrized one."""
    # schemathesis 4.32's `from_fixture` names each operation's subtest through `Node._nodeid`, an
    # attribute pytest 9.2 no longer has: give it one (pytest itself reads `nodeid`).
    request.node._nodeid = request.node.nodeid
    server = start_server(env=NO_RATE_LIMITS)
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=CONFIG)
    schema.auth(refresh_interval=None)(caller.provider())  # not cached: a rotation takes effect at once
    return schema


@pytest.fixture(params=CALLERS)
def caller(request: pytest.FixtureRequest, alice_token: str) -> Iterator[Caller]:
    """The caller of one run; afterwards, a valid token must have been served and the others never."""
    tokens = {"valid token": alice_token, "no token": None, "unknown token": "pbt_" + "0" * 40}
    caller = Caller(tokens[request.param])
    yield caller
    served = sum(n for status, n in caller.statuses.items() if status < 300)
    assert (served > 0) == (request.param == "valid token"), caller.statuses


schema = schemathesis.pytest.from_fixture("rest_api")


@schema.parametrize()
def test_rest_api_matches_its_openapi_document(case: Case[Any], caller: Caller) -> None:
    response = case.call_and_validate(timeout=30)
    if case.method.upper() == case.operation.method.upper():  # not a method the path does not take (S3's)
        caller.statuses[response.status_code] += 1
        assert_json_error(response)
    caller.follow(response)


def assert_json_error(response: Response) -> None:
    """An error of the REST API is `{"detail": ..., "request_id": ...}`, as `Detail` declares."""
    if response.status_code < 400:
        return
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), response.text
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body.get("request_id"), body
