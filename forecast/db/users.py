"""API users and their bearer tokens: one table (``api_users``) in the service's SQL database.

A token is 32 random bytes from ``secrets.token_urlsafe`` (256 bits) behind a short ``fcst_`` prefix
(recognisable in logs and secret scanners). Only its SHA-256 is stored. A slow password hash (scrypt,
argon2) defends low-entropy secrets against guessing; a 256-bit random token cannot be guessed, so the
slow hash would only cost ~50 ms of CPU on every authenticated request without adding safety, whereas
SHA-256 lets the lookup be one indexed equality query. The clear token is shown once, when created.

Roles are ordered: ``reader`` < ``operator`` < ``forecaster`` < ``admin``; a role includes the ones below it
(a forecaster approves model promotions; an admin also manages users).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from forecast.db.engine import SQLStore
from forecast.db.tables import api_users
from forecast.errors import BadInputError
from forecast.timeutil import iso as iso_

__all__ = ["NAME_RULE", "ROLES", "User", "UserExistsError", "UserStore", "UnknownUserError", "hash_token",
           "role_allows"]

log = logging.getLogger(__name__)

ROLES = ("reader", "operator", "forecaster", "admin")
TOKEN_PREFIX = "fcst_"

users_table = api_users


#: what a user name may be (the API uses it as a path segment: /users/{name})
NAME_RULE = "1 to 128 characters, not blank, without '/' (a name is a path segment of /users/{name})"


class UserExistsError(BadInputError):
    """An active user of that name exists (revoke it first); a conflict with the table, not a bad request."""


class UnknownUserError(BadInputError, KeyError):
    """No user of that name (also a ``KeyError``)."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class User:
    name: str
    role: str
    created_at: datetime
    created_by: str
    token_hint: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, role: str) -> bool:
        return self.active and role_allows(self.role, role)

    def to_json(self) -> dict[str, Any]:
        iso = lambda t: None if t is None else iso_(t)  # noqa: E731
        return {"name": self.name, "role": self.role, "active": self.active, "token_hint": self.token_hint,
                "created_at": iso(self.created_at), "created_by": self.created_by,
                "revoked_at": iso(self.revoked_at), "revoked_by": self.revoked_by}


def role_allows(have: str, need: str) -> bool:
    """Whether role ``have`` includes role ``need`` (reader < operator < admin)."""
    return ROLES.index(have) >= ROLES.index(need)


def hash_token(token: str) -> str:
    """SHA-256 hex of a token (see the module docstring for why not a slow hash)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _user(r: Any) -> User:
    return User(name=r["name"], role=r["role"], created_at=r["created_at"], created_by=r["created_by"],
                token_hint=r["token_hint"], revoked_at=r["revoked_at"], revoked_by=r["revoked_by"])


class UserStore(SQLStore):
    """The users table on one database (SQLite or PostgreSQL; the same URL as the review queue).

    Engines as the review queue's (`qc.sqlstore.make_engines`): on SQLite, WAL and writes ``BEGIN
    IMMEDIATE``; the table is created when missing, safely from several processes at once.
    """

    def __init__(self, url: str, *, schema: str | None = None):
        self._open(url, schema=schema)

    def add(self, name: str, role: str, *, by: str = "cli") -> tuple[User, str]:
        """Create a user (or re-activate a revoked one) with a fresh token; returns (user, clear token).

        Raises:
            BadInputError: empty name, unknown role, or an active user of that name exists.
        """
        if not isinstance(name, str) or "/" in name or len(name) > 128 or not name.strip():
            raise BadInputError(f"a user name must be {NAME_RULE}, got {name!r}", param="name")
        name = name.strip()
        if role not in ROLES:
            raise BadInputError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = {"role": role, "token_hash": hash_token(token), "token_hint": token[: len(TOKEN_PREFIX) + 4],
               "created_at": datetime.now(timezone.utc), "created_by": by, "revoked_at": None, "revoked_by": None}
        with self._write.begin() as conn:
            old = conn.execute(select(users_table).where(users_table.c.name == name)).mappings().first()
            if old is not None and old["revoked_at"] is None:
                raise UserExistsError(
                    f"user {name!r} already exists with role {old['role']}; revoke it first to issue a new token"
                )
            try:
                if old is None:
                    conn.execute(insert(users_table).values(name=name, **row))
                else:
                    conn.execute(update(users_table).where(users_table.c.name == name).values(**row))
            except IntegrityError:
                raise UserExistsError(f"user {name!r} was created by someone else at the same moment") from None
        log.info("user %s added with role %s by %s", name, role, by)
        return self.get(name), token

    def revoke(self, name: str, *, by: str = "cli") -> User:
        """Revoke a user's token (the row stays, for the record). Revoking twice is harmless."""
        with self._write.begin() as conn:
            r = conn.execute(select(users_table).where(users_table.c.name == name)).mappings().first()
            if r is None:
                raise UnknownUserError(f"no user named {name!r}; `forecast users list` shows them")
            if r["revoked_at"] is None:
                conn.execute(update(users_table).where(users_table.c.name == name)
                             .values(revoked_at=datetime.now(timezone.utc), revoked_by=by))
        log.info("user %s revoked by %s", name, by)
        return self.get(name)

    def get(self, name: str) -> User:
        with self.engine.connect() as conn:
            r = conn.execute(select(users_table).where(users_table.c.name == name)).mappings().first()
        if r is None:
            raise UnknownUserError(f"no user named {name!r}; `forecast users list` shows them")
        return _user(r)

    def list(self, *, include_revoked: bool = True) -> list[User]:
        q = select(users_table).order_by(users_table.c.name)
        if not include_revoked:
            q = q.where(users_table.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [_user(r) for r in conn.execute(q).mappings()]

    def authenticate(self, token: str) -> User | None:
        """The active user holding this token, or None (unknown or revoked)."""
        if not token or len(token) > 256:
            return None
        with self.engine.connect() as conn:
            r = conn.execute(select(users_table).where(users_table.c.token_hash == hash_token(token),
                                                       users_table.c.revoked_at.is_(None))).mappings().first()
        return None if r is None else _user(r)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))
