"""The `scope` values of a token request, and `Grant`, one access entry of a token.

Grammar (distribution's `spec/auth/scope.md`)::

    scope         := resourcescope (' ' resourcescope)*
    resourcescope := type ['(' class ')'] ':' name ':' action (',' action)*

`GET /v2/auth` sends one `scope` query parameter per resource; a `POST` form sends one value
with the resources separated by spaces. Wharf accepts both, and merges repeated resources.

What Wharf accepts:
- `repository:<namespace>/<repo>[/<more>]:<actions>`, actions among `pull`, `push`, `delete`
  and `*`. The name is a path of lowercase components (the OCI name grammar), without a
  hostname or port, except that a leading `<server_hostname>/` is removed as Quay does.
  `repository(<class>)` is read as `repository`: the spec deprecates the class and ignores it.
- `registry:catalog:*`, for `GET /v2/_catalog`. Quay refuses it with a 400: its scope regex only
  admits `repository:` scopes with `push`, `pull` and `*` (and no `delete` either).
- Anything else is a `ScopeError` (a 400), as in Quay: unknown resource types, unknown actions,
  uppercase or malformed names, a port in the name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wharf.registry.names import MAX_NAME_LENGTH, NAME_RE

REPOSITORY = "repository"
REGISTRY = "registry"
CATALOG = "catalog"

PULL = "pull"
PUSH = "push"
DELETE = "delete"
ALL = "*"
REPOSITORY_ACTIONS: tuple[str, ...] = (PULL, PUSH, DELETE, ALL)
"""Every repository action, in the order Wharf writes them."""
CATALOG_ACTIONS: tuple[str, ...] = (ALL,)

MAX_SCOPES = 64
"""Resources in one token request; more is a `ScopeError` rather than 64 database lookups."""
MAX_SCOPE_LENGTH = 1024

_TYPE_RE = re.compile(r"([a-z0-9]+)(?:\(([a-z0-9]+)\))?")
_ACTION_ORDER = {action: index for index, action in enumerate(REPOSITORY_ACTIONS)}


class ScopeError(ValueError):
    """A `scope` value Wharf cannot accept; `str()` says which one and why."""

    def __init__(self, scope: str, reason: str) -> None:
        super().__init__(f"invalid scope {scope[:MAX_SCOPE_LENGTH]!r}: {reason}")
        self.scope = scope
        self.reason = reason


def _ordered(actions: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(actions), key=lambda action: _ACTION_ORDER.get(action, 99)))


@dataclass(frozen=True, slots=True)
class Grant:
    """One resource and actions on it: a requested scope, or an `access` entry of a token.

    `actions` are deduplicated and in the order of `REPOSITORY_ACTIONS`; `*` grants every
    action (distribution's rule). An entry with no actions is legal: Quay emits one for a
    scope it refused entirely.
    """

    type: str
    name: str
    actions: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", _ordered(self.actions))

    def allows(self, action: str) -> bool:
        return action in self.actions or ALL in self.actions

    def intersect(self, allowed: Iterable[str]) -> Grant:
        """The requested actions that `allowed` covers (`*` in `allowed` covers all of them)."""
        allowed = frozenset(allowed)
        if ALL in allowed:
            return self
        return Grant(self.type, self.name, tuple(a for a in self.actions if a in allowed))

    def scope(self) -> str:
        """The scope string, e.g. `repository:ns/app:pull,push`, for a challenge."""
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    def claim(self) -> dict[str, Any]:
        """The JWT `access` entry: `{"type", "name", "actions"}`."""
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}

    @classmethod
    def from_claim(cls, entry: object) -> Grant:
        """Read one `access` entry of a verified token; `ValueError` when it is malformed."""
        if not isinstance(entry, Mapping):
            raise ValueError("an access entry must be an object")
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if kind not in (REPOSITORY, REGISTRY):
            raise ValueError(f"access type must be {REPOSITORY!r} or {REGISTRY!r}")
        if not isinstance(name, str) or not name:
            raise ValueError("access name must be a non-empty string")
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise ValueError("access actions must be a list of strings")
        known = REPOSITORY_ACTIONS if kind == REPOSITORY else CATALOG_ACTIONS
        unknown = [a for a in actions if a not in known]
        if unknown:
            raise ValueError(f"unknown {kind} action {unknown[0]!r}")
        return cls(kind, name, tuple(actions))


def _name_problem(name: str) -> str | None:
    """Why `name` is not a repository path, or None when it is one."""
    if not name:
        return "the repository name is empty"
    if ":" in name:
        return "the repository name must not carry a host or a port"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "the repository name has an empty path component"
    if name != name.lower():
        return "repository names are lowercase"
    if not NAME_RE.fullmatch(name):
        return (
            "each path component must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)* "
            "(lowercase letters and digits, separated by '.', '_', '__' or dashes)"
        )
    namespace, _, repository = name.partition("/")
    if len(namespace) > MAX_NAME_LENGTH or len(repository) > MAX_NAME_LENGTH:
        return f"the namespace and the repository are limited to {MAX_NAME_LENGTH} characters"
    return None


def _parse_actions(scope: str, text: str, known: tuple[str, ...]) -> tuple[str, ...]:
    if not text:
        raise ScopeError(scope, "no actions after the last ':'")
    actions = text.split(",")
    for action in actions:
        if not action:
            raise ScopeError(scope, "empty action in the comma-separated action list")
        if action not in known:
            raise ScopeError(
                scope, f"unknown action {action[:32]!r}: expected one of {', '.join(known)}"
            )
    return tuple(actions)


def parse_scope(scope: str, *, server_hostname: str | None = None) -> Grant:
    """Parse one `type:name:actions` resource scope (no spaces).

    `server_hostname`, when given, is removed from the front of a repository name
    (`registry.example.com/ns/app` becomes `ns/app`), like Quay's scope regex does.
    """
    if len(scope) > MAX_SCOPE_LENGTH:
        raise ScopeError(scope, f"longer than {MAX_SCOPE_LENGTH} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in scope):
        raise ScopeError(scope, "whitespace or control characters inside a resource scope")
    kind, sep, rest = scope.partition(":")
    name, sep2, action_text = rest.rpartition(":")
    if not sep or not sep2:
        raise ScopeError(scope, "expected <type>:<name>:<actions>")
    type_match = _TYPE_RE.fullmatch(kind)
    if type_match is None:
        raise ScopeError(scope, "the resource type must match [a-z0-9]+ with an optional (class)")
    resource_type = type_match.group(1)
    if resource_type == REGISTRY:
        # Quay answers 400 to this scope; Wharf grants it (see the module docstring).
        if name != CATALOG:
            raise ScopeError(scope, f"the only registry resource is {CATALOG!r}")
        return Grant(REGISTRY, CATALOG, _parse_actions(scope, action_text, CATALOG_ACTIONS))
    if resource_type != REPOSITORY:
        raise ScopeError(
            scope,
            f"unsupported resource type {resource_type!r}: Wharf knows "
            f"{REPOSITORY!r} and '{REGISTRY}:{CATALOG}'",
        )
    if server_hostname and name.startswith(server_hostname + "/"):
        name = name[len(server_hostname) + 1 :]
    problem = _name_problem(name)
    if problem is not None:
        raise ScopeError(scope, problem)
    return Grant(REPOSITORY, name, _parse_actions(scope, action_text, REPOSITORY_ACTIONS))


def parse_scopes(values: Iterable[str], *, server_hostname: str | None = None) -> tuple[Grant, ...]:
    """Parse every `scope` value of a request (each may hold space-separated scopes).

    Empty values are skipped (the spec allows an empty scope). A resource named twice gets
    the union of its actions, at the place of its first mention.
    """
    merged: dict[tuple[str, str], Grant] = {}
    for value in values:
        for part in value.split(" "):
            if not part:
                continue
            grant = parse_scope(part, server_hostname=server_hostname)
            key = (grant.type, grant.name)
            previous = merged.get(key)
            if previous is not None:
                grant = Grant(grant.type, grant.name, previous.actions + grant.actions)
            elif len(merged) >= MAX_SCOPES:
                raise ScopeError(part, f"more than {MAX_SCOPES} resources in one request")
            merged[key] = grant
    return tuple(merged.values())
