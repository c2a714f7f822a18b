"""/api/v2/users: accounts (admin), API keys (each user's own), JWT sign in and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tiermover.api.deps import AdminScope, CurrentPrincipal, DbSession, Scope
from tiermover.api.nodeum.filters import parse_list_query
from tiermover.api.nodeum.render import collection, columns, created
from tiermover.db.models import ApiKey, User
from tiermover.service import auth as auth_service
from tiermover.service import users as user_service
from tiermover.service.listing import Attr, list_page
from sqlalchemy import select

router = APIRouter(tags=["users"])

USER_ATTRS = {
    "id": Attr(User.id, "int"),
    "username": Attr(User.username),
    "email": Attr(User.email),
    "is_admin": Attr(User.is_admin, "bool"),
    "created_at": Attr(User.created_at, "datetime"),
    "updated_at": Attr(User.updated_at, "datetime"),
}
API_KEY_ATTRS = {"id": Attr(ApiKey.id, "int"), "name": Attr(ApiKey.name)}


def render_user(user: User) -> dict:
    body = columns(user, ("id", "username", "email", "is_admin", "created_at", "updated_at"))
    body["user_id"] = user.id
    body["group_id"] = None
    return body


def render_api_key(api_key: ApiKey, full_key: str | None = None) -> dict:
    return {
        "id": api_key.id,
        "name": api_key.name,
        "key": full_key or auth_service.masked_key(api_key),
        "api_key_scopes": [{"controller": s.controller, "action": s.action} for s in api_key.scopes],
    }


class Credentials(BaseModel):
    username: str
    password: str


class SignInBody(BaseModel):
    user: Credentials


class UserBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    username: Annotated[str | None, Field(max_length=255)] = None
    password: str | None = None
    email: str | None = None
    is_admin: bool | None = None


class ApiKeyScopeBody(BaseModel):
    controller: str
    action: str


class ApiKeyBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: Annotated[str | None, Field(max_length=255)] = None
    api_key_scopes: list[ApiKeyScopeBody] | None = None


# --- sessions ----------------------------------------------------------------------------

@router.post("/users/sign_in", status_code=201, summary="Open a session (JWT in the Authorization response header).")
def sign_in(body: SignInBody, request: Request, session: DbSession):
    lifetime = request.app.state.settings.session_lifetime
    user, token = auth_service.sign_in(session, body.user.username, body.user.password, lifetime)
    response = created(render_user(user))
    response.headers["Authorization"] = f"Bearer {token}"
    return response


@router.delete("/users/sign_out", status_code=204, summary="Close the session.")
def sign_out(session: DbSession, principal: Scope("sessions", "destroy")):
    auth_service.sign_out(session, principal)
    return Response(status_code=204)


# --- accounts (administrators) -------------------------------------------------------------

@router.get("/users", summary="Lists users (administrators only).")
def index_users(request: Request, session: DbSession, principal: AdminScope("users", "index")):
    page = list_page(session, select(User), USER_ATTRS, parse_list_query(request.query_params, USER_ATTRS), User.id)
    return collection("users", page, render_user)


@router.post("/users", status_code=201, summary="Creates a user (administrators only).")
def create_user(body: UserBody, session: DbSession, principal: AdminScope("users", "create")):
    return created(render_user(user_service.create_user(session, body.model_dump(exclude_unset=True))))


@router.get("/users/me", summary="The signed-in user.")
def show_me(session: DbSession, principal: CurrentPrincipal):
    return render_user(user_service.get_user(session, principal.user_id))


@router.get("/users/{user_id}", summary="Displays a user (administrators, or the user itself).")
def show_user(user_id: int, session: DbSession, principal: Scope("users", "show")):
    if user_id != principal.user_id:
        principal.require_admin()
    return render_user(user_service.get_user(session, user_id))


@router.put("/users/{user_id}", summary="Updates a user (administrators only).")
def update_user(user_id: int, body: UserBody, session: DbSession, principal: AdminScope("users", "update")):
    user = user_service.get_user(session, user_id)
    return render_user(user_service.update_user(session, user, body.model_dump(exclude_unset=True)))


@router.delete("/users/{user_id}", status_code=204, summary="Destroys a user (administrators only).")
def destroy_user(user_id: int, session: DbSession, principal: AdminScope("users", "destroy")):
    user_service.delete_user(session, user_service.get_user(session, user_id))
    return Response(status_code=204)


# --- API keys ----------------------------------------------------------------------------

@router.get("/users/me/api_keys", summary="Lists your API keys (masked).")
def index_api_keys(request: Request, session: DbSession, principal: Scope("api_keys", "index")):
    stmt = select(ApiKey).where(ApiKey.user_id == principal.user_id)
    page = list_page(session, stmt, API_KEY_ATTRS, parse_list_query(request.query_params, API_KEY_ATTRS), ApiKey.id)
    return collection("api_keys", page, render_api_key)


@router.post("/users/me/api_keys", status_code=201, summary="Creates an API key; the whole key is shown only in this response.")
def create_api_key(body: ApiKeyBody, session: DbSession, principal: Scope("api_keys", "create")):
    api_key, key = user_service.create_api_key(session, principal, body.model_dump(exclude_unset=True))
    return created(render_api_key(api_key, full_key=key))


@router.get("/users/me/api_keys/{api_key_id}", summary="Displays one of your API keys (masked).")
def show_api_key(api_key_id: int, session: DbSession, principal: Scope("api_keys", "show")):
    return render_api_key(user_service.get_api_key(session, principal, api_key_id))


@router.put("/users/me/api_keys/{api_key_id}", summary="Updates one of your API keys.")
def update_api_key(api_key_id: int, body: ApiKeyBody, session: DbSession,
                   principal: Scope("api_keys", "update")):
    api_key = user_service.get_api_key(session, principal, api_key_id)
    return render_api_key(user_service.update_api_key(session, api_key, body.model_dump(exclude_unset=True)))


@router.delete("/users/me/api_keys/{api_key_id}", status_code=204, summary="Destroys one of your API keys.")
def destroy_api_key(api_key_id: int, session: DbSession, principal: Scope("api_keys", "destroy")):
    user_service.delete_api_key(session, user_service.get_api_key(session, principal, api_key_id))
    return Response(status_code=204)
