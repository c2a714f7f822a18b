"""Users, API keys with scopes, JWT sessions and server-wide settings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tiermover.db.base import Base, BigId, UTCDateTime, utcnow


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[str | None] = mapped_column(String(255))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    # The key itself is never stored: only its SHA-256 (keys are 256-bit random, so a fast
    # digest is enough and lets every request find its key by index) and its last characters
    # for the masked display.
    key_digest: Mapped[str] = mapped_column(String(64), unique=True)
    key_tail: Mapped[str] = mapped_column(String(8))
    key_length: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")
    scopes: Mapped[list[ApiKeyScope]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ApiKeyScope.id"
    )


class ApiKeyScope(Base):
    __tablename__ = "api_key_scopes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    controller: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))


class UserSession(Base):
    """A signed-in JWT session; signing out deletes the row and the token stops working."""

    __tablename__ = "user_sessions"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Setting(Base):
    """Server-wide values that every server process must share (e.g. the JWT secret)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
