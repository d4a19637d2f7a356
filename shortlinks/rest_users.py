"""The REST API's account routes: `/user/me`, `/user/me/token`, `/auth` and pyBlobServer's `/user/{id}`.

pyBlobServer's `/user/{id}` answered anyone, and `?function=change_token` let anyone reset anyone's
token. Here every route needs the caller's bearer token, `/user/{id}` answers only for the caller
(403 otherwise), and a rotation replaces exactly the token the request came with: the old one stops
working at once. No response carries an S3 secret, and only `/auth` and a rotation carry a token.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from objstore import Store
from objstore.records import UserRecord

from .errors import ApiError
from .restbase import RestContext, human_space, iso, space_left
from .restmodels import AuthInfo, Detail, Token, UserInfo, UserWithToken

HIDDEN = "[hidden...]"


def add_user_routes(router: APIRouter, context: RestContext) -> None:
    users = UsersApi(context)
    router.add_api_route("/auth", users.auth, methods=["GET"], tags=["users"])
    router.add_api_route("/user/me", users.me, methods=["GET"], tags=["users"])
    router.add_api_route("/user/me/token", users.rotate_token, methods=["POST"], tags=["users"])
    router.add_api_route(
        "/user/{user_id}", users.user, methods=["GET"], tags=["users"], responses={403: {"model": Detail}}
    )


class UsersApi:
    """The user endpoints of the REST API: the caller's account, token check and rotation."""

    def __init__(self, context: RestContext):
        self.context = context

    async def auth(self, request: Request) -> AuthInfo:
        """pyBlobServer's token check: your user name and the token you sent."""
        _, caller = await self.context.caller(request)
        return AuthInfo(user=caller.user, token=caller.token)

    async def me(self, request: Request) -> UserInfo:
        """Your usage, limits and counters."""
        store, caller = await self.context.caller(request)
        return user_info(await run_in_threadpool(current_user, store, caller.user))

    async def rotate_token(self, request: Request) -> Token:
        """Replace the token this request came with by a new one; the old one stops working at once."""
        store, caller = await self.context.caller(request)
        return Token(token=await run_in_threadpool(store.accounts.rotate_token, caller.token))

    async def user(self, request: Request, user_id: str, function: Literal["", "change_token"] = "") -> UserWithToken:
        """pyBlobServer's account route, for your own user only; `?function=change_token` rotates
        the token this request came with and returns the new one."""
        store, caller = await self.context.caller(request)
        if user_id != caller.user:
            raise ApiError(403, "you may only see your own account")
        token = HIDDEN
        if function == "change_token":
            token = await run_in_threadpool(store.accounts.rotate_token, caller.token)
        info = user_info(await run_in_threadpool(current_user, store, caller.user))
        return UserWithToken(**info.model_dump(), token=token)


def current_user(store: Store, name: str) -> UserRecord:
    store.stats.flush()  # this worker's pending download counts, so the totals are current
    return store.accounts.get_user(name)


def user_info(user: UserRecord) -> UserInfo:
    left = space_left(user)
    return UserInfo(
        user=user.name, total_size=user.usage_bytes, quota=user.quota or None,
        max_file_size=user.max_object_size or None, available_space=human_space(left), available_bytes=left,
        file_count=user.object_count, total_upload_times=user.uploads, total_upload_byte=user.bytes_uploaded,
        total_download_times=user.downloads,
        total_download_byte=user.bytes_served, last_upload_at=iso(user.last_upload),
        last_download_at=iso(user.last_download), created_at=iso(user.created) or "",
    )  # fmt: skip
