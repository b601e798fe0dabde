"""Where one request goes: the pure decision, from the table and the request line.

Precedence, first that applies:
1. `kill-switch`: the table's kill switch names the upstream for everything.
2. `sticky`: an upload session that an upstream started stays there (the caller looks it up
   and passes `sticky_upstream`).
3. The first capability that matches method and path (see `table.py` for the order). With a
   canary and a repository (from a `/v2/<name>/...` path, or for `/v2/auth` from the first
   `repository:` scope of the token request):
   `canary-repo` (an allow-listed glob matches `org/repo`), then `canary-org` (the
   organisation, the name's first component, is allow-listed), then `percent` (the stable
   bucket of `org/repo` is below the percentage).
4. `owner`: the capability's owner. `/v2/` and `/v2/_catalog` name no repository and always
   go to the owner.

The bucket is nginx's `split_clients` computation (MurmurHash2 of `org/repo`, seed 0, as a
fraction of 2^32), so an nginx rendered from the table splits exactly as the edge does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

from wharf.edge.table import Capability, RouteTable

Reason = Literal["kill-switch", "sticky", "canary-repo", "canary-org", "percent", "owner"]
REGISTRY_PATH_RE = re.compile(
    r"/v2/(?P<name>[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)+)"
    r"/(?:blobs|manifests|tags|referrers)(?:/.*)?"
)
UPLOAD_PATH_RE = re.compile(r"/v2/(?P<name>.+)/blobs/uploads/(?P<session>[^/]+)")


@dataclass(frozen=True, slots=True)
class Decision:
    upstream: str
    reason: Reason
    capability: str
    repository: str | None = None


def repository_of(path: str, query: str = "") -> str | None:
    """The `org/repo` a registry request is about, if any."""
    found = REGISTRY_PATH_RE.fullmatch(path)
    if found:
        return found.group("name")
    if path.rstrip("/") == "/v2/auth":
        for key, value in parse_qsl(query):
            if key == "scope" and value.startswith("repository:"):
                name = value[len("repository:") :].rpartition(":")[0]
                return name or None
    return None


def upload_session_of(path: str) -> str | None:
    """The session id of `/v2/<name>/blobs/uploads/<session>` (not of the POST that starts one)."""
    found = UPLOAD_PATH_RE.fullmatch(path)
    return found.group("session") if found else None


def murmur2(data: bytes, seed: int = 0) -> int:
    """MurmurHash2, 32-bit, as nginx's `ngx_murmur_hash2` (little-endian blocks)."""
    m, length = 0x5BD1E995, len(data)
    h = (seed ^ length) & 0xFFFFFFFF
    for offset in range(0, length - length % 4, 4):
        k = int.from_bytes(data[offset : offset + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[length - length % 4 :]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def bucket(repository: str) -> float:
    """Where `org/repo` falls in [0, 100): stable across processes, hosts and nginx."""
    return murmur2(repository.encode()) / 2**32 * 100


def in_percent(repository: str, percent: float) -> bool:
    """nginx `split_clients` semantics: the first `percent`% of the hash space."""
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    # nginx keeps percentages in hundredths and compares the hash with the scaled boundary.
    boundary = round(percent * 100) * 0xFFFFFFFF // 10000
    return murmur2(repository.encode()) < boundary


def decide(
    table: RouteTable,
    method: str,
    path: str,
    query: str = "",
    *,
    sticky_upstream: str | None = None,
) -> Decision | None:
    """The upstream for one request; None when no capability matches (impossible with the
    default catch-all, kept for custom tables in tests)."""
    capability = table.match(method, path)
    if capability is None:
        return None
    repository = repository_of(path, query) if capability.registry else None
    if table.kill_switch is not None:
        return Decision(table.kill_switch, "kill-switch", capability.name, repository)
    if sticky_upstream is not None and sticky_upstream in table.upstreams:
        return Decision(sticky_upstream, "sticky", capability.name, repository)
    return _by_canary(capability, repository)


def _by_canary(capability: Capability, repository: str | None) -> Decision:
    canary = capability.canary
    if canary is not None and repository is not None:
        if canary.repository_matches(repository):
            return Decision(canary.upstream, "canary-repo", capability.name, repository)
        if repository.split("/", 1)[0] in canary.organisations:
            return Decision(canary.upstream, "canary-org", capability.name, repository)
        if in_percent(repository, canary.percent):
            return Decision(canary.upstream, "percent", capability.name, repository)
    return Decision(capability.owner, "owner", capability.name, repository)
