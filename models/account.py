"""Login accounts of registry persons (the served UI and API require login by default).

An account belongs to one person of the organisation registry (``person.id`` is the login
name). Passwords are hashed with Argon2id (``argon2-cffi``, its recommended parameters) and
never stored, logged or shown. Repeated failures lock the account for a while (policy
``login.max_failures`` within ``login.lockout_minutes``); the failure count and the lock are
rows here, so every server process sees them. A disabled account, a person no longer active
or holding no post cannot log in.

Besides persons, one **service credential** (login name ``service``) is kept as a random
token in ``DUTYFLOW_HOME/service.key`` (mode 0600) or given by ``DUTYFLOW_SERVICE_TOKEN``:
workers, the sweep and the serve process use it; it acts as ``system`` only, or — for the
CLI on the server's own machine — as the person the command names.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Column
from sqlmodel import Field, Session, SQLModel, select

from models import policy
from models.clock import real_now, today_local
from models.db import UTCDateTime, home
from models.errors import DomainError
from models.org import Person, get_person, posts_of

#: The login name of the service credential (no person may have it as id).
SERVICE = "service"
#: Login names that are never a person's account.
RESERVED = {SERVICE, "system"}

_hasher = PasswordHasher()
#: The hash a login of an unknown name is checked against: the same time as a real one.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class Account(SQLModel, table=True):
    __tablename__ = "account"
    person: str = Field(primary_key=True, foreign_key="person.id")
    password_hash: str
    disabled: bool = False
    failures: int = 0
    locked_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    changed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    last_login_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


def _pol(key: str, default: Any) -> Any:
    return policy.get("login", key, default=default)


def min_password_length() -> int:
    return int(_pol("min_password_length", 10))


def set_password(s: Session, person: str, password: str) -> Account:
    """Create the person's account, or set a new password (and enable it again)."""
    if person in RESERVED:
        raise DomainError(f"'{person}' 是保留的登录名，不能作为人员账号", "person")
    get_person(s, person, "person")
    if len(password) < min_password_length():
        raise DomainError(f"口令过短：至少 {min_password_length()} 个字符", "password")
    if password.strip() != password or any(ord(c) < 32 for c in password):
        raise DomainError("口令不能以空格开头或结尾，不能含控制字符", "password")
    at = real_now()
    acc = s.get(Account, person)
    if acc is None:
        acc = Account(person=person, password_hash=_hasher.hash(password), created_at=at, changed_at=at)
    else:
        acc.password_hash, acc.changed_at = _hasher.hash(password), at
        acc.disabled, acc.failures, acc.locked_until = False, 0, None
    s.add(acc)
    return acc


def disable(s: Session, person: str) -> Account:
    acc = s.get(Account, person)
    if acc is None:
        raise DomainError(f"人员 '{person}' 没有登录账号", "person")
    acc.disabled, acc.changed_at = True, real_now()
    s.add(acc)
    return acc


def listing(s: Session) -> list[dict[str, Any]]:
    """Every account (never its hash), with the person's name and whether they may log in now."""
    rows = s.exec(select(Account, Person).join(Person, Person.id == Account.person).order_by(Account.person)).all()
    today = today_local()
    out = []
    for acc, person in rows:
        out.append({"person": acc.person, "name": person.name, "disabled": acc.disabled,
                    "locked_until": acc.locked_until, "failures": acc.failures, "created_at": acc.created_at,
                    "changed_at": acc.changed_at, "last_login_at": acc.last_login_at,
                    "has_post": bool(posts_of(s, acc.person, today)) and person.active})
    return out


@dataclass(frozen=True)
class Login:
    """Who is at the keyboard: a person (or the service), and how that was proven."""

    person: str  # a person id, or SERVICE
    method: str  # a key of models.authority.LOGIN_METHODS
    name: str = ""

    @property
    def is_service(self) -> bool:
        return self.person == SERVICE


class LoginRefused(Exception):
    """A login that does not hold: the reason is for the server log, never for the client
    (which only learns 401) — except a lock, which the person is told with its end."""

    def __init__(self, reason: str, locked_until: datetime | None = None):
        super().__init__(reason)
        self.reason, self.locked_until = reason, locked_until


def _may_log_in(s: Session, person: str) -> Person:
    p = s.get(Person, person)
    if p is None or not p.active or not posts_of(s, person, today_local()):
        raise LoginRefused(f"人员 {person} 不在岗或已停用")
    return p


def verify_password(s: Session, person: str, password: str, *, verified: set[str] | None = None) -> Login:
    """Check a person's password; count failures and lock after too many. ``verified`` holds
    fingerprints of (name, password, hash) already checked in this process: a repeated request
    skips the deliberately slow hash (the account's state is read every time all the same)."""
    at = real_now()
    acc = s.get(Account, person) if person not in RESERVED else None
    if acc is None:
        try:  # the same work as for a real account: the answer's time tells nothing
            _hasher.verify(_DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            pass
        raise LoginRefused(f"无此账号：{person[:64]!r}")
    if acc.disabled:
        raise LoginRefused(f"账号 {person} 已停用")
    if acc.locked_until is not None and acc.locked_until > at:
        raise LoginRefused(f"账号 {person} 已锁定", acc.locked_until)
    mark = fingerprint(person, password, acc.password_hash)
    if verified is None or mark not in verified:
        try:
            _hasher.verify(acc.password_hash, password)
        except (VerificationError, InvalidHashError):
            acc.failures += 1
            if acc.failures >= int(_pol("max_failures", 5)):
                acc.locked_until, acc.failures = at + timedelta(minutes=int(_pol("lockout_minutes", 15))), 0
            s.add(acc)
            s.commit()
            raise LoginRefused(f"账号 {person} 口令错误", acc.locked_until if acc.locked_until and acc.locked_until > at else None)
        if verified is not None:
            verified.add(mark)
        acc.failures, acc.locked_until, acc.last_login_at = 0, None, at
        s.add(acc)
        s.commit()
    p = _may_log_in(s, person)
    return Login(person=person, method="password", name=p.name)


def proxied(s: Session, person: str) -> Login:
    """A person named by the trusted reverse proxy's identity header (the street's unified
    login): registered, active, holding a post, and no disabled account."""
    acc = s.get(Account, person)
    if acc is not None and acc.disabled:
        raise LoginRefused(f"账号 {person} 已停用")
    p = _may_log_in(s, person)
    return Login(person=person, method="proxy", name=p.name)


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


# ---------------------------------------------------------------- the service credential


def service_key_path() -> Path:
    return home() / "service.key"


def service_token(create: bool = False) -> str | None:
    """The service credential's token: ``DUTYFLOW_SERVICE_TOKEN``, else the key file under
    DUTYFLOW_HOME (created, mode 0600, when ``create``)."""
    token = os.environ.get("DUTYFLOW_SERVICE_TOKEN", "").strip()
    if token:
        return token
    path = service_key_path()
    if path.exists():
        return path.read_text(encoding="utf-8").strip() or None
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secrets.token_urlsafe(32))
    return path.read_text(encoding="utf-8").strip()


def service_auth_string(create: bool = False) -> str | None:
    """What a client of the API sends (``PREFECT_API_AUTH_STRING``) to log in as the service."""
    token = service_token(create)
    return f"{SERVICE}:{token}" if token else None


def is_service(password: str) -> bool:
    token = service_token()
    return bool(token) and hmac.compare_digest(password.encode(), token.encode())
