"""`/list`, `/delete/{id}`, `/delete_all` and `GET /api/links` against a real server."""

from __future__ import annotations

from datetime import datetime

import httpx
from rest_helpers import delete, get, me, upload, uploaded_id
from shortlinks_site import BUCKET, Site

FILE_FIELDS = {
    "file_id", "file_name", "file_size", "file_type", "upload_at", "download_times", "last_download_at",
    "file_url", "expires_at", "max_downloads", "expired",
}  # fmt: skip


def test_list_shows_pyblobservers_fields(site: Site) -> None:
    file_id = uploaded_id(site, b"<p>hi</p>", "page.html", max_downloads=3)
    httpx.get(f"{site.url}/s/{file_id}")
    response = get(site, "/list")
    assert response.status_code == 200
    assert "x-next-cursor" not in response.headers and "link" not in response.headers
    [info] = response.json()  # a bare list, as pyBlobServer's
    assert set(info) == FILE_FIELDS
    assert (info["file_id"], info["file_name"], info["file_size"]) == (file_id, "page.html", 9)
    assert info["file_type"] == "application/octet-stream"
    assert (info["download_times"], info["max_downloads"], info["expired"]) == (1, 3, False)
    assert info["file_url"] == f"{site.url}/s/{file_id}"
    assert datetime.fromisoformat(info["upload_at"]) <= datetime.fromisoformat(info["last_download_at"])
    assert info["expires_at"] is None


def test_list_is_newest_first_a_page_at_a_time(site: Site) -> None:
    ids = [uploaded_id(site, f"{i}".encode(), f"{i}.txt") for i in range(5)]
    seen: list[str] = []
    cursor, pages = None, 0
    while True:
        response = get(site, "/list", limit=2, cursor=cursor)
        seen += [f["file_id"] for f in response.json()]
        pages += 1
        cursor = response.headers.get("x-next-cursor")
        if cursor is not None:
            assert response.headers["link"] == f'</list?limit=2&cursor={cursor}>; rel="next"'
        if cursor is None:
            break
    assert seen == ids[::-1] and pages == 3
    assert get(site, "/list", limit=0).status_code == 400
    assert get(site, "/list", limit=1001).status_code == 400
    bad = get(site, "/list", cursor="nonsense")
    assert bad.status_code == 400 and "cursor" in bad.json()["detail"]


def test_list_shows_only_the_callers_links(site: Site) -> None:
    uploaded_id(site, b"a", user="alice")
    site.s3.put_object(Bucket=BUCKET, Key="plain-s3-object", Body=b"no link")
    assert get(site, "/list", "bob").json() == []
    assert len(get(site, "/list", "alice").json()) == 1


def test_spent_link_is_listed_as_expired(site: Site) -> None:
    file_id = uploaded_id(site, b"once", max_downloads=1)
    assert httpx.get(f"{site.url}/s/{file_id}").status_code == 200
    [info] = get(site, "/list").json()
    assert info["expired"] is True and info["download_times"] == 1


def test_delete_one_file(site: Site) -> None:
    file_id = uploaded_id(site, b"x" * 100)
    assert delete(site, f"/delete/{file_id}", "bob").status_code == 404
    response = delete(site, f"/delete/{file_id}")
    assert response.status_code == 200 and response.json() == {"message": "File deleted"}
    assert httpx.get(f"{site.url}/s/{file_id}").status_code == 404
    assert me(site)["total_size"] == 0
    again = delete(site, f"/delete/{file_id}")
    assert again.status_code == 404 and "detail" in again.json()
    assert delete(site, "/delete/unknown").status_code == 404


def test_delete_all_needs_confirmation(site: Site) -> None:
    ids = [uploaded_id(site, b"f") for _ in range(3)]
    bob_id = uploaded_id(site, b"bob's", user="bob")
    refused = delete(site, "/delete_all")
    assert refused.status_code == 400 and "confirm=yes" in refused.json()["detail"]
    assert delete(site, "/delete_all", confirm="no").status_code == 400
    assert delete(site, "/delete_all", confirm="yes", function="some").status_code == 400
    response = delete(site, "/delete_all", confirm="yes")
    assert response.status_code == 200 and response.json()["deleted"] == 3
    assert all(httpx.get(f"{site.url}/s/{i}").status_code == 404 for i in ids)
    assert httpx.get(f"{site.url}/s/{bob_id}").content == b"bob's"
    assert me(site)["total_size"] == 0
    uploaded_id(site, b"again")
    slash = delete(site, "/delete_all/", confirm="yes")  # pyBlobServer's path
    assert slash.status_code == 200 and slash.json()["deleted"] == 1


def test_delete_all_expired_keeps_live_files(site: Site) -> None:
    spent = uploaded_id(site, b"burn after reading", max_downloads=1)
    live = uploaded_id(site, b"keep me")
    assert httpx.get(f"{site.url}/s/{spent}").status_code == 200
    response = delete(site, "/delete_all", confirm="yes", function="expired")
    assert response.status_code == 200 and response.json()["deleted"] == 1
    assert [f["file_id"] for f in get(site, "/list").json()] == [live]
    assert me(site)["total_size"] == len(b"keep me")


def test_api_links_lists_links_a_page_at_a_time(site: Site) -> None:
    ids = [uploaded_id(site, b"x") for _ in range(3)]
    site.s3.put_object(Bucket=BUCKET, Key="a.txt", Body=b"a")
    made = site.create_link("a.txt").json()
    first = get(site, "/api/links", limit=3).json()
    assert [link["id"] for link in first["links"]] == [made["id"], *ids[:0:-1]]
    assert first["links"][0] == made
    rest = get(site, "/api/links", cursor=first["next_cursor"]).json()
    assert [link["id"] for link in rest["links"]] == [ids[0]] and rest["next_cursor"] is None
    assert get(site, "/api/links", "bob").json() == {"links": [], "next_cursor": None}
    assert get(site, "/api/links", limit="x").status_code == 400
    assert get(site, "/api/links", cursor="zz").status_code == 400
    assert get(site, "/api/links", None).status_code == 401


def test_upload_result_matches_the_list(site: Site) -> None:
    result = upload(site, b"abc", "notes.txt", content_type="text/plain").json()
    [info] = get(site, "/list").json()
    assert (info["file_id"], info["file_url"], info["file_name"], info["file_size"], info["file_type"]) == (
        result["file_id"], result["file_url"], "notes.txt", 3, "text/plain",
    )  # fmt: skip
