"""The route table: upstreams, capabilities, canary rules and the kill switch.

A table is written in YAML and validated before anything uses it:

```yaml
upstreams:
  legacy: {url: "http://quay.internal:8080"}
  wharf: {url: "http://wharf-registry:8080", connect_timeout: 5, read_timeout: 300}
default_owner: legacy          # owner of every capability not given one below
capabilities:
  registry-pull:
    owner: legacy
    canary: {upstream: wharf, repositories: ["orgB/*", "orgA/app"],
             organisations: ["orgC"], percent: 10}
  mirror-api:                  # a capability of one's own: `match` makes it one
    match: {prefix: /api/v1/mirror, methods: [GET, POST]}
    owner: wharf
kill_switch: null              # an upstream name sends everything there
```

Matching order (documented in docs/edge.md): capabilities defined in the file, in file
order, then the defaults: `registry-auth`, `storage-proxy`, `keys`, `api`, `registry-pull`,
`registry-push`, `catch-all`. The first whose path rule and methods match wins.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
REPOSITORY_GLOB_RE = re.compile(r"[a-z0-9*?._/\[\]!-]+")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
INPROC_SCHEME = "inproc:"


class TableError(ValueError):
    """A table that cannot be applied; `problems` lists every reason, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    url: str
    """`http(s)://host:port[/prefix]`, or `inproc:<service>` for an app in this process."""
    connect_timeout: float = 5.0
    read_timeout: float = 300.0
    max_connections: int = 100

    @property
    def in_process(self) -> bool:
        return self.url.startswith(INPROC_SCHEME)


@dataclass(frozen=True, slots=True)
class Match:
    prefixes: tuple[str, ...] = ()
    pattern: str | None = None
    """A regular expression matched against the whole path (`re.fullmatch`)."""
    methods: frozenset[str] = frozenset()
    """Empty: every method."""

    def matches(self, method: str, path: str) -> bool:
        if self.methods and method not in self.methods:
            return False
        if self.pattern is not None and re.fullmatch(self.pattern, path):
            return True
        return any(_under(path, prefix) for prefix in self.prefixes)


def _under(path: str, prefix: str) -> bool:
    """`/v2/auth` covers `/v2/auth` and `/v2/auth/x`, not `/v2/authz`; `/v2/` covers all below."""
    if prefix.endswith("/"):
        return path.startswith(prefix) or path == prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True, slots=True)
class Canary:
    upstream: str
    repositories: tuple[str, ...] = ()
    """Globs over `org/repo` (`orgB/*`, `orgA/app`); `*` does not cross `/`."""
    organisations: tuple[str, ...] = ()
    percent: float = 0.0

    def repository_matches(self, repository: str) -> bool:
        return any(glob_matches(glob, repository) for glob in self.repositories)


def glob_matches(glob: str, repository: str) -> bool:
    """fnmatch per path component: `orgB/*` is every repository of orgB at one level,
    `orgB/**`... is not a thing; `orgB/*/*` reaches two levels."""
    want, have = glob.split("/"), repository.split("/")
    return len(want) == len(have) and all(
        fnmatch.fnmatchcase(part, pattern) for part, pattern in zip(have, want, strict=True)
    )


@dataclass(frozen=True, slots=True)
class Capability:
    name: str
    match: Match
    owner: str
    canary: Canary | None = None
    registry: bool = False
    """Paths under /v2/: the repository in the path (or the token scope) selects canaries."""


DEFAULT_CAPABILITIES: tuple[tuple[str, Match, bool], ...] = (
    ("registry-auth", Match(prefixes=("/v2/auth",)), True),
    ("storage-proxy", Match(prefixes=("/_storage_proxy",)), False),
    ("keys", Match(prefixes=("/keys", "/.well-known/")), False),
    ("api", Match(prefixes=("/api/",)), False),
    ("registry-pull", Match(prefixes=("/v2/",), methods=frozenset({"GET", "HEAD"})), True),
    (
        "registry-push",
        Match(prefixes=("/v2/",), methods=frozenset({"POST", "PATCH", "PUT", "DELETE"})),
        True,
    ),
    ("catch-all", Match(prefixes=("/",)), False),
)
DEFAULT_NAMES = tuple(name for name, _, _ in DEFAULT_CAPABILITIES)


@dataclass(frozen=True)
class RouteTable:
    upstreams: Mapping[str, Upstream]
    capabilities: tuple[Capability, ...]
    kill_switch: str | None = None
    source: dict[str, Any] = field(default_factory=dict, compare=False)
    """The validated document, as stored and shown by `wharf edge status`."""

    def capability(self, name: str) -> Capability:
        for capability in self.capabilities:
            if capability.name == name:
                return capability
        raise KeyError(name)

    def match(self, method: str, path: str) -> Capability | None:
        for capability in self.capabilities:
            if capability.match.matches(method, path):
                return capability
        return None


def parse_table_yaml(text: str) -> RouteTable:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise TableError([f"not valid YAML: {error}"]) from None
    return build_table(document)


def build_table(document: object) -> RouteTable:
    """Validate a table document; every problem is reported at once."""
    problems: list[str] = []
    if not isinstance(document, dict):
        raise TableError(["the table must be a mapping with 'upstreams' and 'capabilities'"])
    unknown = set(document) - {"upstreams", "default_owner", "capabilities", "kill_switch"}
    problems += [f"unknown key {key!r}" for key in sorted(map(str, unknown))]
    upstreams = _upstreams(document.get("upstreams"), problems)
    default_owner = document.get("default_owner")
    if default_owner is not None and default_owner not in upstreams:
        problems.append(f"default_owner: unknown upstream {default_owner!r}")
    kill_switch = document.get("kill_switch")
    if kill_switch is not None and kill_switch not in upstreams:
        problems.append(f"kill_switch: unknown upstream {kill_switch!r}")
    capabilities = _capabilities(
        document.get("capabilities") or {}, upstreams, default_owner, problems
    )
    if problems:
        raise TableError(problems)
    return RouteTable(upstreams, capabilities, kill_switch, source=document)


def _upstreams(raw: object, problems: list[str]) -> dict[str, Upstream]:
    if not isinstance(raw, dict) or not raw:
        problems.append("upstreams: at least one upstream is required, as a mapping")
        return {}
    found: dict[str, Upstream] = {}
    for name, spec in raw.items():
        where = f"upstreams.{name}"
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            problems.append(f"{where}: names are [a-z0-9][a-z0-9._-]*")
            continue
        if isinstance(spec, str):
            spec = {"url": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
            problems.append(f"{where}: needs a 'url'")
            continue
        extra = set(spec) - {"url", "connect_timeout", "read_timeout", "max_connections"}
        problems += [f"{where}: unknown key {key!r}" for key in sorted(map(str, extra))]
        url = spec["url"].rstrip("/")
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?|inproc:[a-z][a-z0-9-]*", url):
            problems.append(f"{where}.url: must be http(s)://host[:port][/prefix] or inproc:<name>")
        numbers = {}
        for key, default in (
            ("connect_timeout", 5.0),
            ("read_timeout", 300.0),
            ("max_connections", 100),
        ):
            value = spec.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                problems.append(f"{where}.{key}: must be a positive number")
                value = default
            numbers[key] = value
        found[name] = Upstream(
            name,
            url,
            float(numbers["connect_timeout"]),
            float(numbers["read_timeout"]),
            int(numbers["max_connections"]),
        )
    return found


def _capabilities(
    raw: object, upstreams: Mapping[str, Upstream], default_owner: object, problems: list[str]
) -> tuple[Capability, ...]:
    if not isinstance(raw, dict):
        problems.append("capabilities: must be a mapping of capability name to settings")
        return ()
    custom: list[Capability] = []
    settings: dict[str, Capability] = {}
    for name, spec in raw.items():
        where = f"capabilities.{name}"
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            problems.append(f"{where}: names are [a-z0-9][a-z0-9._-]*")
            continue
        if not isinstance(spec, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        extra = set(spec) - {"owner", "canary", "match"}
        problems += [f"{where}: unknown key {key!r}" for key in sorted(map(str, extra))]
        is_default = name in DEFAULT_NAMES
        if is_default and "match" in spec:
            problems.append(f"{where}.match: a default capability's match cannot change")
        if not is_default and "match" not in spec:
            problems.append(f"{where}: unknown capability; a new one needs 'match'")
            continue
        owner = spec.get("owner", default_owner)
        if owner is None:
            problems.append(f"{where}: no owner (set 'owner' or 'default_owner')")
        elif owner not in upstreams:
            problems.append(f"{where}.owner: unknown upstream {owner!r}")
        match = _match(spec["match"], where, problems) if not is_default else Match()
        registry = is_default and dict((n, r) for n, _, r in DEFAULT_CAPABILITIES)[name]
        canary = _canary(spec.get("canary"), where, upstreams, problems)
        if canary is not None and not (
            registry or (match.prefixes and all(p.startswith("/v2/") for p in match.prefixes))
        ):
            problems.append(f"{where}.canary: canaries need registry paths (under /v2/)")
        capability = Capability(name, match, str(owner), canary, registry)
        if is_default:
            settings[name] = capability
        else:
            custom.append(
                Capability(
                    name,
                    match,
                    str(owner),
                    canary,
                    registry=any(p.startswith("/v2/") for p in match.prefixes),
                )
            )
    defaults = []
    for name, match, registry in DEFAULT_CAPABILITIES:
        chosen = settings.get(name)
        owner = chosen.owner if chosen else default_owner
        if owner is None:
            problems.append(f"capabilities.{name}: no owner (set it or 'default_owner')")
            continue
        defaults.append(
            Capability(name, match, str(owner), chosen.canary if chosen else None, registry)
        )
    ordered = tuple(custom) + tuple(defaults)
    _check_reachable(ordered, problems)
    return ordered


def _match(raw: object, where: str, problems: list[str]) -> Match:
    if not isinstance(raw, dict):
        problems.append(f"{where}.match: must be a mapping with 'prefix' or 'pattern'")
        return Match()
    extra = set(raw) - {"prefix", "pattern", "methods"}
    problems += [f"{where}.match: unknown key {key!r}" for key in sorted(map(str, extra))]
    prefixes = raw.get("prefix", [])
    prefixes = [prefixes] if isinstance(prefixes, str) else prefixes
    if not isinstance(prefixes, list) or not all(
        isinstance(p, str) and p.startswith("/") for p in prefixes
    ):
        problems.append(f"{where}.match.prefix: paths starting with '/'")
        prefixes = []
    pattern = raw.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as error:
            problems.append(f"{where}.match.pattern: not a regular expression ({error})")
            pattern = None
    if not prefixes and pattern is None:
        problems.append(f"{where}.match: needs 'prefix' or 'pattern'")
    methods = raw.get("methods", [])
    if not isinstance(methods, list) or not all(
        isinstance(m, str) and m.upper() in METHODS for m in methods
    ):
        problems.append(f"{where}.match.methods: a list of {', '.join(sorted(METHODS))}")
        methods = []
    return Match(tuple(prefixes), pattern, frozenset(m.upper() for m in methods))


def _canary(
    raw: object, where: str, upstreams: Mapping[str, Upstream], problems: list[str]
) -> Canary | None:
    if raw is None:
        return None
    where = f"{where}.canary"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    extra = set(raw) - {"upstream", "repositories", "organisations", "percent"}
    problems += [f"{where}: unknown key {key!r}" for key in sorted(map(str, extra))]
    upstream = raw.get("upstream")
    if upstream not in upstreams:
        problems.append(f"{where}.upstream: unknown upstream {upstream!r}")
    repositories = _strings(raw.get("repositories", []), f"{where}.repositories", problems)
    for glob in repositories:
        if "/" not in glob or not REPOSITORY_GLOB_RE.fullmatch(glob) or "//" in glob:
            problems.append(f"{where}.repositories: bad glob {glob!r} (org/repo, * and ?)")
    organisations = _strings(raw.get("organisations", []), f"{where}.organisations", problems)
    for organisation in organisations:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", organisation):
            problems.append(f"{where}.organisations: bad organisation {organisation!r}")
    percent = raw.get("percent", 0)
    if (
        isinstance(percent, bool)
        or not isinstance(percent, int | float)
        or not 0 <= percent <= 100
        or round(percent * 100) != percent * 100
    ):
        # Hundredths at most: nginx's split_clients, which a rendered table uses, has no finer.
        problems.append(f"{where}.percent: a number from 0 to 100 with at most 2 decimals")
        percent = 0
    if not repositories and not organisations and not percent:
        problems.append(f"{where}: selects nothing (no repositories, organisations or percent)")
    return Canary(str(upstream), tuple(repositories), tuple(organisations), float(percent))


def _strings(raw: object, where: str, problems: list[str]) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        problems.append(f"{where}: must be a list of strings")
        return []
    duplicates = sorted({item for item in raw if raw.count(item) > 1})
    problems += [f"{where}: {item!r} is listed twice" for item in duplicates]
    return raw


def _check_reachable(capabilities: tuple[Capability, ...], problems: list[str]) -> None:
    """A custom capability whose every prefix lies under an earlier one with the same or
    wider methods can never match."""
    for index, later in enumerate(capabilities):
        if later.match.pattern is not None or not later.match.prefixes:
            continue
        for earlier in capabilities[:index]:
            if earlier.match.pattern is not None:
                continue
            wider = not earlier.match.methods or (
                later.match.methods and later.match.methods <= earlier.match.methods
            )
            covered = all(
                any(_under(prefix, outer) for outer in earlier.match.prefixes)
                for prefix in later.match.prefixes
            )
            if wider and covered and later.name not in DEFAULT_NAMES:
                problems.append(
                    f"capabilities.{later.name}: unreachable, '{earlier.name}' matches first"
                )
                break
