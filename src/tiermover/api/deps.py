"""Request-scoped dependencies shared by every dialect: database session and caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tiermover.service.auth import Principal, authenticate


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, else rolled back.

    Function scope makes the commit happen before the response is sent, so a client never
    sees a success for a change that is not yet (or never) committed.
    """
    session = request.app.state.session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_session, scope="function")]


def get_principal(request: Request, session: DbSession) -> Principal:
    principal = authenticate(session, request.headers.get("authorization"))
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def scope(controller: str, action: str):
    """Dependency: the caller, who must hold the API-key scope `controller/action`."""

    # async: it does no I/O, and a sync dependency costs a thread hop per request.
    async def check(principal: CurrentPrincipal) -> Principal:
        principal.require_scope(controller, action)
        return principal

    check.__name__ = f"scope_{controller}_{action}"
    return check


def Scope(controller: str, action: str):  # noqa: N802 - reads like a type in signatures
    return Annotated[Principal, Depends(scope(controller, action))]


def admin_scope(controller: str, action: str):
    """Dependency: an administrator holding the scope. Checked before the body is read, so a
    non-administrator gets 403 whatever they sent."""

    async def check(principal: CurrentPrincipal) -> Principal:
        principal.require_scope(controller, action)
        principal.require_admin()
        return principal

    check.__name__ = f"admin_scope_{controller}_{action}"
    return check


def AdminScope(controller: str, action: str):  # noqa: N802
    return Annotated[Principal, Depends(admin_scope(controller, action))]
