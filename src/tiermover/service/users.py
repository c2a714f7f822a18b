"""User accounts, the first administrator, and each user's API keys."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tiermover.db.base import utcnow
from tiermover.db.models import ApiKey, ApiKeyScope, User
from tiermover.service.auth import (
    Principal,
    forget_cached_principals,
    hash_password,
    key_digest,
    new_api_key,
)
from tiermover.service.errors import NotFound, ValidationFailed


def ensure_admin(session: Session, username: str, password: str | None, data_dir: Path) -> str | None:
    """Create the first administrator if there is no user yet.

    Returns the generated password when one had to be made up (it is also written to
    `<data_dir>/admin-password`, readable by the owner only), else None.
    """
    if session.scalar(select(func.count()).select_from(User)):
        return None
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(18)
        data_dir.mkdir(parents=True, exist_ok=True)
        target = data_dir / "admin-password"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        os.chmod(target, 0o600)
    session.add(User(username=username, password_hash=hash_password(password), is_admin=True))
    session.flush()
    return generated


def _check_user_fields(session: Session, values: dict, user: User | None) -> None:
    failure = ValidationFailed()
    if "username" in values or user is None:
        username = (values.get("username") or "").strip()
        if not username:
            failure.add("username", "blank")
        else:
            clash = session.scalar(select(User.id).where(User.username == username))
            if clash is not None and (user is None or clash != user.id):
                failure.add("username", "taken", value=username)
    if ("password" in values or user is None) and not values.get("password"):
        failure.add("password", "blank")
    failure.raise_if_any()


def create_user(session: Session, values: dict) -> User:
    _check_user_fields(session, values, None)
    user = User(
        username=values["username"].strip(),
        email=values.get("email"),
        is_admin=bool(values.get("is_admin", False)),
        password_hash=hash_password(values["password"]),
    )
    session.add(user)
    session.flush()
    return user


def update_user(session: Session, user: User, values: dict) -> User:
    _check_user_fields(session, values, user)
    forget_cached_principals(session)
    if "username" in values:
        user.username = values["username"].strip()
    if "email" in values:
        user.email = values["email"]
    if "is_admin" in values and values["is_admin"] is not None:
        user.is_admin = bool(values["is_admin"])
    if values.get("password"):
        user.password_hash = hash_password(values["password"])
    session.flush()
    return user


def delete_user(session: Session, user: User) -> None:
    forget_cached_principals(session)
    session.delete(user)
    session.flush()


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user", "id", user_id)
    return user


# --- API keys ---------------------------------------------------------------------------

def _scopes_from(values: list[dict] | None) -> list[ApiKeyScope]:
    failure = ValidationFailed()
    scopes = []
    for index, scope in enumerate(values or []):
        controller = (scope.get("controller") or "").strip()
        action = (scope.get("action") or "").strip()
        if not controller or not action:
            failure.add(f"api_key_scopes[{index}]", "blank",
                        "needs both a controller and an action")
            continue
        scopes.append(ApiKeyScope(controller=controller, action=action))
    failure.raise_if_any()
    return scopes


def create_api_key(session: Session, principal: Principal, values: dict) -> tuple[ApiKey, str]:
    key = new_api_key()
    # The official Python client's ApiKeyFull model cannot carry a name, so a key
    # created through it gets one that says when it was made.
    name = (values.get("name") or "").strip() or f"key {utcnow():%Y-%m-%d %H:%M:%S} …{key[-4:]}"
    api_key = ApiKey(
        user_id=principal.user_id, name=name, key_digest=key_digest(key),
        key_tail=key[-4:], key_length=len(key), scopes=_scopes_from(values.get("api_key_scopes")),
    )
    session.add(api_key)
    session.flush()
    session.refresh(api_key)
    return api_key, key


def get_api_key(session: Session, principal: Principal, api_key_id: int) -> ApiKey:
    api_key = session.get(ApiKey, api_key_id)
    if api_key is None or api_key.user_id != principal.user_id:
        raise NotFound("api_key", "id", api_key_id)
    return api_key


def delete_api_key(session: Session, api_key: ApiKey) -> None:
    forget_cached_principals(session)
    session.delete(api_key)
    session.flush()


def update_api_key(session: Session, api_key: ApiKey, values: dict) -> ApiKey:
    forget_cached_principals(session)
    if "name" in values:
        name = (values.get("name") or "").strip()
        if not name:
            raise ValidationFailed.on("name", "blank")
        api_key.name = name
    if values.get("api_key_scopes") is not None:
        api_key.scopes = _scopes_from(values["api_key_scopes"])
    session.flush()
    return api_key
