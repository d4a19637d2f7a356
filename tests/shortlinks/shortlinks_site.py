"""The running server's handles for the short links tests (`conftest.py` builds it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from botocore.client import BaseClient

BUCKET = "shared-files"


@dataclass
class Site:
    url: str
    tokens: dict[str, str]
    s3: BaseClient  # alice's

    def create_link(self, key: str, user: str = "alice", **limits: Any) -> httpx.Response:
        body = {"bucket": BUCKET, "key": key, **limits}
        return httpx.post(f"{self.url}/api/links", json=body, headers=self.auth(user))

    def link_for(self, key: str, data: bytes, content_type: str = "application/octet-stream", **limits: Any) -> str:
        """Upload `data` as `key` with boto3 and return a new link's id."""
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=data, ContentType=content_type)
        response = self.create_link(key, **limits)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def auth(self, user: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[user]}"}
