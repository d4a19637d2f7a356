"""The REST API's OpenAPI document says what the server does: what schemathesis found it did not.

Each test reads the running server's `/openapi.json` and sends the request that showed the gap:
values the server refused while the document allowed them (`test_rest_schema.py`'s "schema-valid
request rejected"), and answers the document left out (the error body's `request_id`, 429, 503, 507).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from rest_helpers import bearer, delete, get, upload
from shortlinks_site import Site

from objstore.links import MAX_DOWNLOADS, MAX_EXPIRES_IN


def document(site: Site) -> dict[str, Any]:
    response = httpx.get(f"{site.url}/openapi.json", timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def query_parameter(doc: dict[str, Any], method: str, path: str, name: str) -> dict[str, Any]:
    found = [p for p in doc["paths"][path][method].get("parameters", []) if p["name"] == name and p["in"] == "query"]
    assert len(found) == 1, f"{method} {path}: {name} declared {len(found)} times"
    parameter: dict[str, Any] = found[0]
    return parameter


def bearer_of(site: Site) -> dict[str, str]:
    return site.auth("alice")


def number_bounds(schema: dict[str, Any]) -> dict[str, Any]:
    """The bounds of a number schema, `Optional` (anyOf with null) or not."""
    keys = ("minimum", "exclusiveMinimum", "maximum")
    branches = [schema, *schema.get("anyOf", [])]
    return {k: b[k] for b in branches for k in keys if k in b}


def test_upload_documents_the_bounds_it_enforces(site: Site) -> None:
    doc = document(site)
    expires = {"exclusiveMinimum": 0, "maximum": MAX_EXPIRES_IN}
    for path in ("/upload", "/upload_batch"):
        assert number_bounds(query_parameter(doc, "post", path, "expires_in")["schema"]) == expires
        downloads = {"minimum": 1, "maximum": MAX_DOWNLOADS}
        assert number_bounds(query_parameter(doc, "post", path, "max_downloads")["schema"]) == downloads
    for name, value in (("expires_in", 0), ("expires_in", MAX_EXPIRES_IN * 2), ("max_downloads", 0)):
        response = httpx.post(
            f"{site.url}/upload", params={name: value}, files={"file": b"x"}, headers=site.auth("alice")
        )
        assert response.status_code == 400 and name in response.json()["detail"], response.text
    assert upload(site, b"x", expires_in=1, max_downloads=1).status_code == 200


def test_a_download_budget_past_the_largest_exact_json_integer_is_refused_everywhere(site: Site) -> None:
    """max_downloads above 2^53 - 1 (the largest integer JavaScript reads exactly): a budget of
    144937468485261819904 was kept, came back from the record as a float, and every `/list` of its
    owner answered 500 from then on (found by schemathesis with a fresh seed)."""
    too_many, auth = MAX_DOWNLOADS + 1, site.auth("alice")
    refusals = [
        httpx.post(f"{site.url}/upload", params={"max_downloads": too_many}, files={"file": b"x"}, headers=auth),
        httpx.post(
            f"{site.url}/upload_batch",
            params={"max_downloads": 144937468485261819904},
            files={"files": b"x"},
            headers=auth,
        ),
        httpx.post(f"{site.url}/upload", data={"max_downloads": str(too_many)}, files={"file": b"x"}, headers=auth),
        site.create_link("a.txt", max_downloads=too_many),
    ]
    assert [r.status_code for r in refusals] == [400] * 4, [r.text for r in refusals]
    assert all("max_downloads" in r.json()["detail"] for r in refusals), [r.text for r in refusals]
    at_the_bound = upload(site, b"x", max_downloads=MAX_DOWNLOADS)
    assert at_the_bound.status_code == 200, at_the_bound.text
    patched = httpx.patch(
        f"{site.url}/api/links/{at_the_bound.json()['file_id']}", json={"max_downloads": too_many}, headers=auth
    )
    assert patched.status_code == 400, patched.text
    listed = get(site, "/list")
    assert listed.status_code == 200, listed.text
    assert [f["max_downloads"] for f in listed.json()] == [MAX_DOWNLOADS]


def test_upload_options_as_form_fields_are_not_in_the_form_schema(site: Site) -> None:
    """Fields must come before the files, which a form's schema cannot say: a client that built its
    form from the schema in any order was refused (`expires_in must come before the files`)."""
    for path, field in (("/upload", "file"), ("/upload_batch", "files")):
        form = document(site)["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert set(form["properties"]) == {field} and form["required"] == [field]
    parts = ('name="file"; filename="a.txt"', "x"), ('name="expires_in"', "60")
    body = "".join(f"--b0\r\nContent-Disposition: form-data; {d}\r\n\r\n{v}\r\n" for d, v in parts) + "--b0--\r\n"
    headers = {**bearer_of(site), "content-type": "multipart/form-data; boundary=b0"}
    late = httpx.post(f"{site.url}/upload", content=body.encode(), headers=headers)
    assert late.status_code == 400 and "before the files" in late.json()["detail"], late.text
    fields_first = upload(site, b"x", expires_in=60)
    assert fields_first.status_code == 200 and fields_first.json()["expires_at"] is not None


def test_a_batch_documents_that_it_needs_a_file(site: Site) -> None:
    files = document(site)["paths"]["/upload_batch"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert files["schema"]["properties"]["files"]["minItems"] == 1
    empty = httpx.post(f"{site.url}/upload_batch", files={"other": b"x"}, headers=site.auth("alice"))
    assert empty.status_code == 400 and "files" in empty.json()["detail"]


def test_list_documents_what_a_cursor_looks_like(site: Site) -> None:
    cursor = query_parameter(document(site), "get", "/list", "cursor")
    assert cursor["schema"]["anyOf"][0]["pattern"] == "^[0-9a-f]{16}$"
    bad = get(site, "/list", cursor="0" * 15)
    assert bad.status_code == 400 and "cursor" in bad.json()["detail"]
    assert get(site, "/list", cursor="0" * 16).status_code == 200


def test_delete_all_documents_its_confirmation(site: Site) -> None:
    confirm = query_parameter(document(site), "delete", "/delete_all", "confirm")
    assert confirm["required"] is True and confirm["schema"]["pattern"] == "^[Yy][Ee][Ss]$"
    refused = delete(site, "/delete_all", function="all")
    assert refused.status_code == 400 and "confirm=yes" in refused.json()["detail"]
    assert delete(site, "/delete_all", confirm="YES").status_code == 200


def test_errors_document_their_request_id(site: Site) -> None:
    doc = document(site)
    detail = doc["components"]["schemas"]["Detail"]
    assert set(detail["required"]) == {"detail", "request_id"}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert "429" in operation["responses"], f"{method} {path} does not declare its rate limit"
    for path in ("/upload", "/upload_batch"):
        assert {"503", "507"} <= set(doc["paths"][path]["post"]["responses"]), f"{path}: a full disk's answer"
    refused = httpx.get(f"{site.url}/user/me", headers=bearer("pbt_unknown"), timeout=30)
    assert refused.status_code == 401 and set(refused.json()) == {"detail", "request_id"}


@pytest.mark.parametrize(("method", "path"), [("PATCH", "/api/links"), ("TRACE", "/user/me"), ("PATCH", "/list")])
def test_a_method_no_route_takes_is_a_json_405_with_its_request_id(site: Site, method: str, path: str) -> None:
    answer = httpx.request(method, f"{site.url}{path}", timeout=30)
    assert answer.status_code == 405 and answer.headers["allow"]
    body = answer.json()
    assert set(body) == {"detail", "request_id"} and re.fullmatch("[0-9A-F]{16}", body["request_id"]), body
