"""Recently verified logins, so a client's burst of token requests pays bcrypt once.

`docker push` and `podman push` ask `/v2/auth` for a token several times in a few seconds,
each time with the same Basic credentials, and each bcrypt check at Quay's cost 12 takes
~0.3 s of a CPU. A successful check is remembered for `ttl` seconds as an HMAC-SHA256, under a
key drawn when the process starts, of the user name, the password and the stored hash:

- no password is kept, and the entry is useless outside this process;
- a changed password (a new stored hash) misses at once; a disabled user is refused by the
  caller, which reads the user row on every request anyway;
- only successes are remembered: a wrong password always costs a full bcrypt check, so
  guessing gets no cheaper;
- lookups compare digests in constant time (`hmac.compare_digest`), and the cache holds at
  most `max_entries`, dropping the oldest first.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

DEFAULT_TTL_S = 60.0
DEFAULT_MAX_ENTRIES = 10_000


class LoginCache:
    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = secrets.token_bytes(32)
        self._ttl, self._max_entries, self._clock = ttl, max_entries, clock
        # Keyed by user name (one entry each): the digest is checked, never used as a key, so
        # a lookup never depends on where a guess lands in a hash table.
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    def _digest(self, username: str, password: str, password_hash: str) -> bytes:
        message = b"\0".join(
            part.encode("utf-8", "surrogatepass") for part in (username, password, password_hash)
        )
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def verified(self, username: str, password: str, password_hash: str | None) -> bool:
        """Whether these credentials matched this stored hash less than `ttl` seconds ago."""
        if self._ttl <= 0 or password_hash is None:
            return False
        entry = self._entries.get(username)
        if entry is None:
            return False
        digest, expires = entry
        if self._clock() >= expires:
            self._entries.pop(username, None)
            return False
        return hmac.compare_digest(digest, self._digest(username, password, password_hash))

    def remember(self, username: str, password: str, password_hash: str) -> None:
        """Record a successful bcrypt check."""
        if self._ttl <= 0:
            return
        self._entries.pop(username, None)
        self._entries[username] = (
            self._digest(username, password, password_hash),
            self._clock() + self._ttl,
        )
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
