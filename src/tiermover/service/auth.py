"""Who is calling: Basic auth, API keys with scopes, and JWT sessions.

Basic and JWT callers have the full access of their user; an API key is limited to its
scopes (`controller/action`, as in the Nodeum API-key scopes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tiermover.db.base import utcnow
from tiermover.db.models import ApiKey, ApiKeyScope, Setting, User, UserSession
from tiermover.service.errors import Forbidden, Unauthorized

_hasher = PasswordHasher()
# Verified against when the user does not exist, so that a wrong username costs the same
# time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

API_KEY_PREFIX = "tm_"
JWT_ALGORITHM = "HS256"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    is_admin: bool
    scopes: frozenset[tuple[str, str]] | None = None  # None: full access of the user
    api_key_id: int | None = None
    session_jti: str | None = None

    def has_scope(self, controller: str, action: str) -> bool:
        return self.scopes is None or (controller, action) in self.scopes

    def require_scope(self, controller: str, action: str) -> None:
        if not self.has_scope(controller, action):
            raise Forbidden(f"This API key lacks the scope {controller}/{action}")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("This action needs an administrator")

    def holds_explicit_scope(self, controller: str, action: str) -> bool:
        """Secrets are only revealed to an API key that was given the scope by name."""
        return self.scopes is not None and (controller, action) in self.scopes


def _principal_for(user: User, **extra) -> Principal:
    return Principal(user_id=user.id, username=user.username, is_admin=user.is_admin, **extra)


class _VerifiedCredentials:
    """Remembers recently verified Basic credentials for a short time.

    Argon2 is deliberately slow (tens of ms); re-verifying the same password on every
    request of a polling client would make Basic auth the bottleneck of the whole API.
    Only an HMAC of the credentials (keyed with a per-process secret) is kept in memory,
    bound to the stored password hash: once the password changes (in this process or
    another one sharing the database) the entry no longer matches.
    """

    def __init__(self, ttl_seconds: float = 60.0, max_entries: int = 10_000):
        self._key = secrets.token_bytes(32)
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: dict[bytes, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def digest(self, username: str, password: str) -> bytes:
        return hmac.new(self._key, f"{username}\0{password}".encode(), hashlib.sha256).digest()

    def matches(self, username: str, password: str, password_hash: str) -> bool:
        entry = self._entries.get(self.digest(username, password))
        return bool(entry and entry[1] > time.monotonic()
                    and hmac.compare_digest(entry[0], password_hash))

    def remember(self, username: str, password: str, password_hash: str) -> None:
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[self.digest(username, password)] = (
                password_hash, time.monotonic() + self._ttl)


verified_credentials = _VerifiedCredentials()


def authenticate_password(session: Session, username: str, password: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        verify_password(_DUMMY_HASH, password)
        raise Unauthorized("Invalid username or password")
    if verified_credentials.matches(username, password, user.password_hash):
        return user
    if not verify_password(user.password_hash, password):
        raise Unauthorized("Invalid username or password")
    verified_credentials.remember(username, password, user.password_hash)
    return user


# --- API keys ---------------------------------------------------------------------------

def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def masked_key(api_key: ApiKey) -> str:
    return "*" * max(api_key.key_length - len(api_key.key_tail), 0) + api_key.key_tail


class _RecentPrincipals:
    """Principals verified in the last few seconds, by a digest of their credentials (an
    API key's digest; for Basic credentials an HMAC keyed with a per-process secret).

    Looking a caller up costs more than the rest of a simple request (show a task).
    Changes made in this process (key updated or deleted, user or password changed) drop
    the entries at once; another server process sharing the database sees them within
    `ttl_seconds`.
    """

    def __init__(self, ttl_seconds: float = 5.0, max_entries: int = 10_000):
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: dict[str | bytes, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str | bytes) -> Principal | None:
        entry = self._entries.get(digest)
        if entry and entry[1] > time.monotonic():
            return entry[0]
        return None

    def put(self, digest: str | bytes, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[digest] = (principal, time.monotonic() + self._ttl)

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()


recent_api_keys = _RecentPrincipals()
recent_basic_callers = _RecentPrincipals()


def _forget_all() -> None:
    recent_api_keys.forget()
    recent_basic_callers.forget()


def forget_cached_principals(session: Session) -> None:
    """Call when a key or a user changes: once committed, no cached principal survives."""
    from tiermover.service.transactions import after_commit

    _forget_all()
    after_commit(session, _forget_all)


def authenticate_api_key(session: Session, key: str) -> Principal:
    # One statement (key, user and scopes joined): nodes authenticate every report with it.
    digest = key_digest(key)
    cached = recent_api_keys.get(digest)
    if cached is not None:
        return cached
    rows = session.execute(
        select(ApiKey.id, ApiKey.key_digest, User.id, User.username, User.is_admin,
               ApiKeyScope.controller, ApiKeyScope.action)
        .join(User, User.id == ApiKey.user_id)
        .outerjoin(ApiKeyScope, ApiKeyScope.api_key_id == ApiKey.id)
        .where(ApiKey.key_digest == digest)
    ).all()
    if not rows or not hmac.compare_digest(rows[0][1], digest):
        raise Unauthorized("Invalid API key")
    api_key_id, _, user_id, username, is_admin = rows[0][:5]
    scopes = frozenset((controller, action) for *_, controller, action in rows
                       if controller is not None)
    principal = Principal(user_id=user_id, username=username, is_admin=is_admin, scopes=scopes,
                          api_key_id=api_key_id)
    recent_api_keys.put(digest, principal)
    return principal


# --- JWT sessions -----------------------------------------------------------------------

def jwt_secret(session: Session) -> str:
    """The signing secret, shared by every server process through the database."""
    setting = session.get(Setting, "jwt_secret")
    if setting is None:
        setting = Setting(key="jwt_secret", value=secrets.token_urlsafe(48))
        session.add(setting)
        session.flush()
    return setting.value


def sign_in(session: Session, username: str, password: str, lifetime: timedelta) -> tuple[User, str]:
    user = authenticate_password(session, username, password)
    now = utcnow()
    jti = uuid.uuid4().hex
    session.add(UserSession(jti=jti, user_id=user.id, created_at=now, expires_at=now + lifetime))
    token = jwt.encode(
        {"sub": str(user.id), "jti": jti, "iat": int(now.timestamp()),
         "exp": int((now + lifetime).timestamp())},
        jwt_secret(session),
        algorithm=JWT_ALGORITHM,
    )
    return user, token


def sign_out(session: Session, principal: Principal) -> None:
    if principal.session_jti is None:
        raise Unauthorized("Signing out needs a session token (sign in first)")
    session.execute(delete(UserSession).where(UserSession.jti == principal.session_jti))


def authenticate_jwt(session: Session, token: str) -> Principal:
    try:
        claims = jwt.decode(token, jwt_secret(session), algorithms=[JWT_ALGORITHM],
                            options={"require": ["exp", "jti", "sub"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The session token has expired; sign in again") from None
    except jwt.PyJWTError:
        raise Unauthorized("Invalid session token") from None
    user_session = session.get(UserSession, claims["jti"])
    if user_session is None or user_session.expires_at <= utcnow():
        raise Unauthorized("The session has ended; sign in again")
    user = session.get(User, int(claims["sub"]))
    if user is None:
        raise Unauthorized("The session's user no longer exists")
    return _principal_for(user, session_jti=user_session.jti)


# --- The Authorization header -----------------------------------------------------------

def authenticate(session: Session, authorization: str | None) -> Principal:
    if not authorization:
        raise Unauthorized("Authentication required: Basic credentials, an API key or a session token")
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "basic" and credentials:
        try:
            username, _, password = base64.b64decode(credentials).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise Unauthorized("Malformed Basic credentials") from None
        digest = verified_credentials.digest(username, password)
        cached = recent_basic_callers.get(digest)
        if cached is not None:
            return cached
        principal = _principal_for(authenticate_password(session, username, password))
        recent_basic_callers.put(digest, principal)
        return principal
    token = credentials if scheme.lower() == "bearer" and credentials else authorization.strip()
    if token.count(".") == 2 and not token.startswith(API_KEY_PREFIX):
        return authenticate_jwt(session, token)
    return authenticate_api_key(session, token)
