"""Passwords against Quay's `user.password_hash` (bcrypt).

- Quay writes `$2b$12$...` (older installations `$2a$`); `$2y$` (same algorithm) is read too.
- bcrypt only reads the first 72 bytes of a password. The bcrypt Quay used truncated longer
  passwords silently, so verification truncates the same way (bcrypt >= 5 would raise);
  `hash_password` refuses them instead, so that no new hash ignores part of a password.
- `bcrypt.checkpw` compares in constant time. An unknown user or a user without a password is
  checked against a dummy hash of the same cost, so the answer takes as long as a real one.
- bcrypt is slow on purpose (~0.2 s at cost 12): in the server, use `verify_password_async`,
  which runs it in a worker thread instead of blocking the event loop.
- Nothing here logs or puts into an exception message a password or a hash.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import secrets

import bcrypt

log = logging.getLogger(__name__)

DEFAULT_ROUNDS = 12
"""`bcrypt.gensalt()`'s default, which is what Quay hashes with."""
MIN_ROUNDS = 4
MAX_ROUNDS = 31
MAX_PASSWORD_BYTES = 72
BCRYPT_HASH_RE = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


class PasswordError(ValueError):
    """A password that cannot be hashed (empty, or longer than bcrypt reads)."""


def is_bcrypt_hash(value: str | None) -> bool:
    """Whether `value` looks like a bcrypt hash Wharf can check (`$2a$`, `$2b$`, `$2y$`)."""
    return value is not None and BCRYPT_HASH_RE.fullmatch(value) is not None


def hash_password(password: str, *, rounds: int = DEFAULT_ROUNDS) -> str:
    """A new `$2b$` bcrypt hash of `password`, for bootstrap users."""
    if not password:
        raise PasswordError("the password is empty")
    encoded = password.encode("utf-8")
    if len(encoded) > MAX_PASSWORD_BYTES:
        raise PasswordError(
            f"the password is {len(encoded)} bytes long; bcrypt reads at most "
            f"{MAX_PASSWORD_BYTES} (UTF-8)"
        )
    if not MIN_ROUNDS <= rounds <= MAX_ROUNDS:
        raise PasswordError(f"bcrypt rounds must be between {MIN_ROUNDS} and {MAX_ROUNDS}")
    return bcrypt.hashpw(encoded, bcrypt.gensalt(rounds)).decode("ascii")


@functools.cache
def _dummy_hash() -> bytes:
    return bcrypt.hashpw(secrets.token_hex(16).encode("ascii"), bcrypt.gensalt(DEFAULT_ROUNDS))


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether `password` matches `password_hash` (a `user.password_hash` value).

    False for an empty password, a missing hash (after a dummy check, see the module
    docstring) and a hash that is not bcrypt (logged: the row needs fixing).
    """
    if not password:
        return False
    encoded = password.encode("utf-8")[:MAX_PASSWORD_BYTES]
    if password_hash is None:
        bcrypt.checkpw(encoded, _dummy_hash())
        return False
    if not is_bcrypt_hash(password_hash):
        log.warning("a stored password hash is not a bcrypt hash; the login is refused")
        return False
    try:
        return bcrypt.checkpw(encoded, password_hash.encode("ascii"))
    except ValueError:
        log.warning("bcrypt refused a stored password hash; the login is refused")
        return False


async def verify_password_async(password: str, password_hash: str | None) -> bool:
    """`verify_password` in a worker thread (bcrypt releases the GIL while it hashes)."""
    return await asyncio.to_thread(verify_password, password, password_hash)
