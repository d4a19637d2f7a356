"""`POST /api/links`, `GET`/`DELETE /api/links/{id}` against a real server: auth, ownership, revocation."""

from __future__ import annotations

import httpx
from shortlinks_site import BUCKET, Site


def test_create_returns_the_public_url(site: Site) -> None:
    site.s3.put_object(Bucket=BUCKET, Key="a.txt", Body=b"a")
    response = site.create_link("a.txt", expires_in=3600, max_downloads=5)
    assert response.status_code == 201
    link = response.json()
    assert link["url"] == f"{site.url}/s/{link['id']}"
    assert (link["bucket"], link["key"], link["max_downloads"], link["downloads"]) == (BUCKET, "a.txt", 5, 0)
    assert link["expires_at"] == link["created"] + 3600
    shown = httpx.get(f"{site.url}/api/links/{link['id']}", headers=site.auth("alice"))
    assert shown.status_code == 200 and shown.json() == link


def test_create_for_a_missing_object_or_bad_body(site: Site) -> None:
    assert site.create_link("missing.txt").status_code == 404
    site.s3.put_object(Bucket=BUCKET, Key="a.txt", Body=b"a")
    assert site.create_link("a.txt", max_downloads=0).status_code == 400
    assert site.create_link("a.txt", expires_in="soon").status_code == 400
    raw = httpx.post(f"{site.url}/api/links", content=b"not json", headers=site.auth("alice"))
    assert raw.status_code == 400 and "detail" in raw.json()


def test_no_or_bad_token_is_401(site: Site) -> None:
    site.s3.put_object(Bucket=BUCKET, Key="a.txt", Body=b"a")
    link_id = site.create_link("a.txt").json()["id"]
    for headers in ({}, {"authorization": "Bearer pbt_wrong"}, {"authorization": "Basic abc"}):
        created = httpx.post(f"{site.url}/api/links", json={"bucket": BUCKET, "key": "a.txt"}, headers=headers)
        assert created.status_code == 401
        assert created.headers["www-authenticate"] == "Bearer"
        assert "detail" in created.json()
        assert httpx.get(f"{site.url}/api/links/{link_id}", headers=headers).status_code == 401
        assert httpx.delete(f"{site.url}/api/links/{link_id}", headers=headers).status_code == 401


def test_another_user_cannot_see_delete_or_link_alices_objects(site: Site) -> None:
    site.s3.put_object(Bucket=BUCKET, Key="a.txt", Body=b"a")
    link_id = site.create_link("a.txt").json()["id"]
    assert httpx.get(f"{site.url}/api/links/{link_id}", headers=site.auth("bob")).status_code == 404
    assert httpx.delete(f"{site.url}/api/links/{link_id}", headers=site.auth("bob")).status_code == 404
    assert site.create_link("a.txt", user="bob").status_code == 404
    assert httpx.get(f"{site.url}/s/{link_id}").content == b"a"


def test_revoked_link_is_404(site: Site) -> None:
    site.s3.put_object(Bucket=BUCKET, Key="a.txt", Body=b"a")
    link_id = site.create_link("a.txt").json()["id"]
    revoked = httpx.delete(f"{site.url}/api/links/{link_id}", headers=site.auth("alice"))
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert httpx.get(f"{site.url}/s/{link_id}").status_code == 404
    assert httpx.get(f"{site.url}/api/links/{link_id}", headers=site.auth("alice")).status_code == 404
    assert httpx.delete(f"{site.url}/api/links/{link_id}", headers=site.auth("alice")).status_code == 404


def test_link_to_a_deleted_object_is_404(site: Site) -> None:
    site.s3.put_object(Bucket=BUCKET, Key="a.txt", Body=b"a")
    link_id = site.create_link("a.txt").json()["id"]
    site.s3.delete_object(Bucket=BUCKET, Key="a.txt")
    response = httpx.get(f"{site.url}/s/{link_id}")
    assert response.status_code == 404
    assert response.json()["detail"] == "object not found"


def post_raw(site: Site, body: bytes) -> httpx.Response:
    return httpx.post(f"{site.url}/api/links", content=body, headers=site.auth("alice"), timeout=60)


def test_hostile_json_bodies_are_4xx_json(site: Site) -> None:
    site.s3.put_object(Bucket=BUCKET, Key="a.txt", Body=b"a")
    padded = b'{"bucket": "%s", "key": "a.txt", "pad": "%s"}' % (BUCKET.encode(), b"x" * (8 * 1024 * 1024))
    for body, status in (
        (padded, 413),  # a body is read into memory: bounded
        (b"[" * 10_000, 400),  # nesting past the parser's recursion limit
        (b'{"bucket": "\\ud800", "key": "a.txt"}', 400),  # a lone surrogate cannot be stored as UTF-8
    ):
        response = post_raw(site, body)
        assert (response.status_code, response.headers["content-type"]) == (status, "application/json"), body[:40]
        assert "detail" in response.json()


def test_unrepresentable_expiry_is_400_and_the_listings_stay_up(site: Site) -> None:
    """Such a link was stored, and every later listing of its owner's links answered 500."""
    site.s3.put_object(Bucket=BUCKET, Key="a.txt", Body=b"a")
    for value in (b"Infinity", b"NaN", b"1e999", b"1e308"):  # 1e308 s: past the year 9999 of ISO 8601
        response = post_raw(site, b'{"bucket": "%s", "key": "a.txt", "expires_in": %s}' % (BUCKET.encode(), value))
        assert response.status_code == 400, response.text
    files = {"file": ("a.txt", b"a")}
    upload = httpx.post(f"{site.url}/upload", params={"expires_in": "1e15"}, files=files, headers=site.auth("alice"))
    assert upload.status_code == 400, upload.text
    assert httpx.get(f"{site.url}/api/links", headers=site.auth("alice")).status_code == 200
    assert httpx.get(f"{site.url}/list", headers=site.auth("alice")).status_code == 200


def test_links_follow_the_current_version_or_keep_the_one_they_name(site: Site) -> None:
    """In a versioned bucket a plain link serves whatever is current (404 under a delete marker);
    a link made with `version_id` serves that version until it is removed."""
    site.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    first = site.s3.put_object(Bucket=BUCKET, Key="v.txt", Body=b"first")["VersionId"]
    following = site.create_link("v.txt").json()
    pinned = site.create_link("v.txt", version_id=first).json()
    assert pinned["version_id"] == first and following["version_id"] is None
    site.s3.put_object(Bucket=BUCKET, Key="v.txt", Body=b"second")
    assert httpx.get(following["url"]).content == b"second"
    assert httpx.get(pinned["url"]).content == b"first"
    site.s3.delete_object(Bucket=BUCKET, Key="v.txt")  # a delete marker
    assert httpx.get(following["url"]).status_code == 404
    assert httpx.get(pinned["url"]).content == b"first"
    site.s3.delete_object(Bucket=BUCKET, Key="v.txt", VersionId=first)
    assert httpx.get(pinned["url"]).status_code == 404
    assert site.create_link("v.txt", version_id=first).status_code == 404
    assert site.create_link("v.txt", version_id="not-a-version").status_code == 400
    assert site.create_link("v.txt", version_id=7).status_code == 400


def test_patch_changes_expiry_and_budget_and_only_for_the_owner(site: Site) -> None:
    site.s3.put_object(Bucket=BUCKET, Key="a.txt", Body=b"a")
    link = site.create_link("a.txt", expires_in=60, max_downloads=2).json()
    url = f"{site.url}/api/links/{link['id']}"
    longer = httpx.patch(url, json={"expires_in": 86400}, headers=site.auth("alice"))
    assert longer.status_code == 200
    assert longer.json()["expires_at"] > link["expires_at"] + 80000 and longer.json()["max_downloads"] == 2
    unlimited = httpx.patch(url, json={"expires_in": None, "max_downloads": None}, headers=site.auth("alice"))
    assert (unlimited.json()["expires_at"], unlimited.json()["max_downloads"]) == (None, None)
    assert httpx.patch(url, json={"max_downloads": 0}, headers=site.auth("alice")).status_code == 400
    assert httpx.patch(url, json={"expires_in": -5}, headers=site.auth("alice")).status_code == 400
    assert httpx.patch(url, json={"max_downloads": 3}, headers=site.auth("bob")).status_code == 404
    assert httpx.patch(url, json={"max_downloads": 3}).status_code == 401
    httpx.delete(url, headers=site.auth("alice"))
    assert httpx.patch(url, json={"max_downloads": 3}, headers=site.auth("alice")).status_code == 404  # revoked


def test_the_owner_sees_the_file_without_spending_a_download(site: Site) -> None:
    link_id = site.link_for("pic.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", max_downloads=1)
    content = f"{site.url}/api/links/{link_id}/content"
    for _ in range(3):
        seen = httpx.get(content, headers=site.auth("alice"))
        assert seen.status_code == 200 and seen.content.startswith(b"<svg")
        assert (
            seen.headers["content-security-policy"] == "sandbox" and seen.headers["x-content-type-options"] == "nosniff"
        )
    assert httpx.get(content, headers=site.auth("bob")).status_code == 404
    assert httpx.get(content).status_code == 401
    assert httpx.get(f"{site.url}/s/{link_id}").status_code == 200  # the one download is still there
    assert httpx.get(f"{site.url}/s/{link_id}").status_code == 410


def test_buckets_and_keys_are_browsable_by_their_owner_only(site: Site) -> None:
    for key in ("top.txt", "photos/a.jpg", "photos/b.jpg", "photos/2024/c.jpg"):
        site.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    buckets = httpx.get(f"{site.url}/api/buckets", headers=site.auth("alice")).json()["buckets"]
    assert BUCKET in [b["name"] for b in buckets]
    assert httpx.get(f"{site.url}/api/buckets", headers=site.auth("bob")).json()["buckets"] == []
    objects = f"{site.url}/api/buckets/{BUCKET}/objects"
    top = httpx.get(objects, headers=site.auth("alice")).json()
    assert [o["key"] for o in top["objects"]] == ["top.txt"] and top["folders"] == ["photos/"]
    first = httpx.get(objects, params={"prefix": "photos/", "limit": 1}, headers=site.auth("alice")).json()
    assert first["folders"] == ["photos/2024/"] and first["objects"] == [] and first["next_after"] == "photos/2024/"
    rest = httpx.get(
        objects, params={"prefix": "photos/", "after": first["next_after"]}, headers=site.auth("alice")
    ).json()
    assert [o["key"] for o in rest["objects"]] == ["photos/a.jpg", "photos/b.jpg"] and rest["next_after"] is None
    assert httpx.get(objects, headers=site.auth("bob")).status_code == 404
    assert (
        httpx.get(f"{site.url}/api/buckets/no-such-bucket-here/objects", headers=site.auth("alice")).status_code == 404
    )
