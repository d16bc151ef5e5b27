"""Accounts for the app: Argon2 password hashes, HttpOnly SameSite session cookies, a CSRF
token per session (double submit: cookie + ``X-CSRF-Token`` header), roles.

On 127.0.0.1 without ``--auth`` every request is the local admin; the CSRF header is still
required on state-changing requests so that another web page cannot post to the local server.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select

from masklab.app import db
from masklab.errors import InputError

SESSION_COOKIE = "masklab_session"
CSRF_COOKIE = "masklab_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_DAYS = 7
_log = logging.getLogger(__name__)


@dataclass
class Principal:
    name: str
    role: str
    user_id: int | None = None
    csrf: str | None = None


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise InputError("a password needs at least 8 characters")
    return _hasher().hash(password)


def verify_password(stored: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    try:
        return _hasher().verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(store, name: str, password: str, role: str) -> dict:
    name = str(name).strip()
    if not name or len(name) > 80:
        raise InputError("a user name needs 1 to 80 characters")
    if role not in db.ROLES:
        raise InputError(f"role must be one of {', '.join(db.ROLES)}")
    with store.transaction() as s:
        if s.scalar(select(db.User).where(db.User.name == name)) is not None:
            raise InputError(f"user {name!r} exists")
        u = db.User(name=name, password_hash=hash_password(password), role=role)
        s.add(u)
        s.flush()
        return {"id": u.id, "name": u.name, "role": u.role}


def users(store) -> list[dict]:
    with store.Session() as s:
        return [{"id": u.id, "name": u.name, "role": u.role}
                for u in s.scalars(select(db.User).order_by(db.User.id))]


def login(store, name: str, password: str) -> tuple[str, Principal] | None:
    """A new session token and its principal, or ``None`` for a wrong name or password."""
    _init_dummy()
    with store.transaction() as s:
        u = s.scalar(select(db.User).where(db.User.name == str(name)))
        # verify against a dummy hash for unknown names: same time either way
        stored = u.password_hash if u else _DUMMY[0]
        if not verify_password(stored, str(password)) or u is None:
            return None
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = _dt.datetime.now(_dt.timezone.utc)
        s.execute(delete(db.LoginSession).where(db.LoginSession.expires_at < now))
        s.add(db.LoginSession(token_hash=_token_hash(token), user_id=u.id, csrf=csrf,
                              expires_at=now + _dt.timedelta(days=SESSION_DAYS)))
        return token, Principal(u.name, u.role, u.id, csrf)


def logout(store, token: str) -> None:
    with store.transaction() as s:
        s.execute(delete(db.LoginSession).where(db.LoginSession.token_hash ==
                                                _token_hash(token)))


def principal(store, token: str | None) -> Principal | None:
    if not token:
        return None
    with store.Session() as s:
        ls = s.get(db.LoginSession, _token_hash(token))
        if ls is None:
            return None
        exp = ls.expires_at
        if exp.tzinfo is None:  # SQLite gives naive datetimes back
            exp = exp.replace(tzinfo=_dt.timezone.utc)
        if exp < _dt.datetime.now(_dt.timezone.utc):
            return None
        u = s.get(db.User, ls.user_id)
        return Principal(u.name, u.role, u.id, ls.csrf)


def csrf_ok(expected: str | None, got: str | None) -> bool:
    return bool(expected) and bool(got) and hmac.compare_digest(str(expected), str(got))


_DUMMY: list[str] = []


def _init_dummy() -> None:
    if not _DUMMY:
        _DUMMY.append(_hasher().hash(secrets.token_urlsafe(16)))


class LoginThrottle:
    """Back-off for wrong passwords, per account and per client address.

    Each key (an account name, an address) may fail ``free`` times in a row; every failure
    after that locks the key for ``base · 2^k`` seconds (k = 0, 1, 2 … , at most ``cap``).
    While either key of a login is locked the server answers 429 with ``Retry-After`` and
    checks no password; a correct login clears both keys. An address gets more free tries
    than an account (an office behind one NAT address shares them). The state is kept in
    memory, per server process; keys idle for ``forget`` seconds are dropped, and at most
    ``max_keys`` are kept (the oldest go first), so a flood of names cannot fill memory.
    """

    def __init__(self, *, free_account: int = 5, free_address: int = 20, base: float = 1.0,
                 cap: float = 900.0, forget: float = 3600.0, max_keys: int = 100_000,
                 clock=None):
        import time

        self.free = {"account": free_account, "address": free_address}
        self.base, self.cap, self.forget, self.max_keys = base, cap, forget, max_keys
        self.clock = clock or time.monotonic
        self._state: dict[tuple[str, str], tuple[int, float, float]] = {}  # fails, until, last

    def _keys(self, name: str, address: str | None) -> list[tuple[str, str]]:
        keys = [("account", str(name).strip().lower())]
        if address:
            keys.append(("address", address))
        return keys

    def retry_after(self, name: str, address: str | None) -> float:
        """Seconds until this login may be tried (0: now)."""
        now = self.clock()
        return max([0.0] + [self._state[k][1] - now for k in self._keys(name, address)
                            if k in self._state])

    def failed(self, name: str, address: str | None) -> float:
        """Record a wrong password; the seconds this login is now locked for."""
        now = self.clock()
        self._prune(now)
        for k in self._keys(name, address):
            fails, until, _ = self._state.pop(k, (0, 0.0, now))
            fails += 1
            over = fails - self.free[k[0]]
            if over > 0:
                until = now + min(self.cap, self.base * 2.0 ** min(over - 1, 60))
            self._state[k] = (fails, until, now)  # re-inserted: the dict stays oldest first
        _log.warning("login failed for %r from %s (%d in a row for the account)", name,
                     address or "?", self._state[self._keys(name, address)[0]][0])
        return self.retry_after(name, address)

    def succeeded(self, name: str, address: str | None) -> None:
        for k in self._keys(name, address):
            self._state.pop(k, None)

    def _prune(self, now: float) -> None:
        while self._state:
            k, (_, until, last) = next(iter(self._state.items()))
            if len(self._state) < self.max_keys and now - max(last, until) < self.forget:
                break
            del self._state[k]
