"""Debian's nginx with a rendered table routes every request where `routing.decide` does.

Sticky uploads are the one rule nginx cannot express (see wharf.edge.nginx); every decision
here is made without a pinned upload, so nginx must agree with the edge on all of them.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, unquote

import httpx
import pytest

from tests.integration.edge_nginx.harness import Upstreams, run_nginx
from wharf.edge.routing import decide, in_percent
from wharf.edge.table import RouteTable, parse_table_yaml

pytestmark = pytest.mark.server("nginx")

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
PATHS = (
    "/",
    "/anything",
    "/v2",
    "/v2/",
    "/v2/_catalog",
    "/v2/orga/app/manifests/v1",
    "/v2/orga/app/tags/list",
    "/v2/orga/other/blobs/uploads/",
    "/v2/orga/other/blobs/uploads/abc-123",
    "/v2/orgb/x/blobs/sha256:aa",
    "/v2/orgb/x/y/tags/list",
    "/v2/orgc/deep/name/manifests/v1",
    "/v2/team1/abc/manifests/x",
    "/v2/team1/xyz/manifests/x",
    "/v2/teamz/abc/referrers/sha256:1",
    "/v2/single/manifests/x",
    "/v2/Upper/x/manifests/y",
    "/v2//orga/app/manifests/v1",
    "/v2/orga/app%2Fx/manifests/v1",
    "/v2/special/x/manifests/y",
    "/v2/special",
    "/v2/auth",
    "/v2/auth/",
    "/v2/authz",
    "/v2/auth/x/manifests/y",
    "/_storage_proxy/abc",
    "/_storage_proxyz",
    "/keys",
    "/keys/abc",
    "/.well-known/openid-configuration",
    "/.well-known",
    "/api",
    "/api/x",
    "/api/v1/mirror",
    "/api/v1/mirror/x",
    "/api/v1/mirrors",
    "/extras/12/info",
    "/extras/ab/info",
)
AUTH_QUERIES = (
    "",
    "service=r&scope=repository:orga/app:pull,push",
    "service=r&scope=repository%3Aorga%2Fapp%3Apull%2Cpush",
    "service=r&scope=repository%3aorgc%2fdeep%2fname%3apull",
    "scope=registry:catalog:*&scope=repository:orga/app:pull",
    "scope=repository:orgz/app:pull&scope=repository:orga/app:pull",
    "scope=repository:x&scope=repository:orga/app:pull",
    "scope=repository::pull",
    "scope=repository:orgb/one:pull:extra",
    "account=a&scope=repository%3Aorgb%2Fq%3Apush",
    "scope=repository:OrgC/app:pull",
    "scope=repository:lonely:pull",
    "xscope=repository:orga/app:pull",
)


def sample_table(upstreams: Upstreams, extra: str = "") -> RouteTable:
    return parse_table_yaml(
        f"""
upstreams:
  legacy: {{url: "{upstreams.legacy}", connect_timeout: 2, read_timeout: 30}}
  wharf: {{url: "{upstreams.wharf}", max_connections: 20}}
  dead: {{url: "{upstreams.closed}", connect_timeout: 1}}
  slow: {{url: "{upstreams.legacy}", read_timeout: 0.3}}
default_owner: legacy
capabilities:
  mirror:
    match: {{prefix: /api/v1/mirror, methods: [GET, POST]}}
    owner: wharf
  extras:
    match: {{pattern: "/extras/[0-9]+/info"}}
    owner: wharf
  special:
    match: {{prefix: [/v2/special/], methods: [GET, HEAD]}}
    owner: wharf
    canary: {{upstream: legacy, repositories: ["special/[a-m]*"], percent: 50}}
  registry-pull:
    canary: {{upstream: wharf, repositories: ["orgb/*", "orga/app", "team?/[a-m]*"],
             organisations: [orgc], percent: 37.5}}
  registry-push:
    canary: {{upstream: wharf, repositories: ["orgb/*"], percent: 12.25}}
  registry-auth:
    canary: {{upstream: wharf, repositories: [orga/app], organisations: [orgc], percent: 50}}
  keys: {{owner: wharf}}
{extra}"""
    )


@pytest.fixture(scope="module")
def nginx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edge-nginx")


@pytest.fixture(scope="module")
def routed(nginx_binary: str, upstreams: Upstreams, nginx_dir: Path) -> Iterator[str]:
    with run_nginx(nginx_binary, sample_table(upstreams), nginx_dir) as url:
        yield url


def expected(table: RouteTable, method: str, target: str) -> str | None:
    path, _, query = target.partition("?")
    # The edge routes on the decoded path (ASGI's `path`), as nginx does on $uri.
    decision = decide(table, method, unquote(path), query)
    return decision.upstream if decision else None


def route_all(base: str, requests: list[tuple[str, str]]) -> list[str | None]:
    """Send every (method, target) through nginx; the upstream that answered each (or None)."""

    def one(client: httpx.Client, method: str, target: str) -> str | None:
        response = client.request(method, base + target, content=b"x" * 3)
        if response.status_code == 404 and "x-upstream" not in response.headers:
            return None
        assert response.status_code == 200, (method, target, response.text)
        return response.headers["x-upstream"]

    with httpx.Client(timeout=10) as client, ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda r: one(client, *r), requests))


def mismatches(table: RouteTable, base: str, requests: list[tuple[str, str]]) -> list[str]:
    got = route_all(base, requests)
    return [
        f"{method} {target}: nginx {actual}, edge {want}"
        for (method, target), actual in zip(requests, got, strict=True)
        if actual != (want := expected(table, method, target))
    ]


def test_every_capability_routes_like_the_edge(routed: str, upstreams: Upstreams) -> None:
    requests = [(method, path) for method in METHODS for path in PATHS]
    requests += [(method, f"/v2/auth?{q}") for method in ("GET", "POST") for q in AUTH_QUERIES]
    assert mismatches(sample_table(upstreams), routed, requests) == []


def random_names(count: int, seed: int = 7) -> list[str]:
    """Valid repository names, some in the canary organisations."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

    def component() -> str:
        parts = ["".join(rng.choices(alphabet, k=rng.randint(1, 8)))]
        while rng.random() < 0.3:
            parts += [rng.choice([".", "_", "__", "-", "--"])]
            parts += ["".join(rng.choices(alphabet, k=rng.randint(1, 5)))]
        return "".join(parts)

    orgs = ["orgb", "orgc", "team1", "special", "orga"]
    return [
        "/".join(
            [rng.choice(orgs) if rng.random() < 0.1 else component()]
            + [component() for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        )
        for _ in range(count)
    ]


def test_percentages_split_like_the_edge(routed: str, upstreams: Upstreams) -> None:
    names = random_names(2000)
    requests: list[tuple[str, str]] = []
    for index, name in enumerate(names):
        requests.append(("GET", f"/v2/{name}/manifests/latest"))
        scope = quote(f"repository:{name}:pull,push", safe="")
        second = [
            ("PUT", f"/v2/{name}/manifests/latest"),
            ("GET", f"/v2/auth?service=r&scope={scope}"),
            ("HEAD", f"/v2/special/{name}/blobs/sha256:0"),
        ]
        requests.append(second[index % 3])
    table = sample_table(upstreams)
    assert mismatches(table, routed, requests) == []
    # The names really exercise the split: both sides of 37.5% are well populated.
    inside = sum(in_percent(name, 37.5) for name in names)
    assert 600 < inside < 900


def random_auth_targets(count: int, seed: int = 11) -> list[str]:
    """Token requests as clients write them (scopes raw, or encoded in upper or lower case),
    with several scopes, other arguments and scopes that name no repository."""
    rng = random.Random(seed)
    names = random_names(count, seed)

    def scope(name: str) -> str:
        value = rng.choice(
            [
                f"repository:{name}:{rng.choice(['pull', 'push', 'pull,push', '*'])}",
                f"repository:{name}",
                "registry:catalog:*",
                "repository::pull",
            ]
        )
        form = rng.random()
        if form < 0.4:
            return value
        encoded = quote(value, safe="")
        return encoded.lower() if form < 0.6 else encoded

    targets = []
    for name in names:
        args = [f"scope={scope(name)}" for _ in range(rng.choice([1, 1, 2, 3]))]
        args += rng.sample(["service=registry", "account=someone", "scope="], k=rng.randint(0, 2))
        rng.shuffle(args)
        targets.append(f"/v2/auth{rng.choice(['', '/'])}?{'&'.join(args)}")
    return targets


def test_token_requests_route_like_the_edge(routed: str, upstreams: Upstreams) -> None:
    requests = [("GET", target) for target in random_auth_targets(1000)]
    assert mismatches(sample_table(upstreams), routed, requests) == []


def random_glob(rng: random.Random, name: str) -> str:
    """A glob made from `name`, so that about half of similar names match it."""
    out = []
    for char in name:
        roll = rng.random()
        if char == "/" or roll < 0.55:
            out.append(char)
        elif roll < 0.65:
            out.append("?")
        elif roll < 0.75:
            out.append("*")
        elif roll < 0.85:
            out.append(f"[{char}{rng.choice('ab0.-_')}]")
        elif roll < 0.92:
            out.append(f"[!{rng.choice('ab0._-')}]")
        else:
            low, high = sorted(rng.sample("-.0ab_", 2))
            out.append(f"[{low}-{high}]")
    return "".join(out)


def test_globs_match_like_the_edge(
    nginx_binary: str, upstreams: Upstreams, nginx_dir: Path
) -> None:
    """nginx's PCRE reads the translated globs as Python's fnmatch reads the globs."""
    rng = random.Random(5)
    tails = [name.split("/", 1)[1] for name in random_names(600, seed=3)]
    sources = rng.sample(tails, 30)
    globs = [random_glob(rng, source) for source in sources]

    def variant(tail: str) -> str:
        at = rng.randrange(len(tail))
        return tail[:at] + rng.choice("ab0x._-") + tail[at + 1 :]

    capabilities = "\n".join(
        f"  g{i}: {{match: {{prefix: /v2/g{i}/}}, owner: legacy,"
        f" canary: {{upstream: wharf, repositories: ['g{i}/{glob}']}}}}"
        for i, glob in enumerate(globs)
    )
    yaml = f"""
upstreams: {{legacy: "{upstreams.legacy}", wharf: "{upstreams.wharf}"}}
default_owner: legacy
capabilities:
{capabilities}
"""
    table = parse_table_yaml(yaml)
    requests = [
        ("GET", f"/v2/g{i}/{tail}/manifests/latest")
        for i, source in enumerate(sources)
        for tail in [source, *(variant(source) for _ in range(20)), *rng.sample(tails, 10)]
    ]
    with run_nginx(nginx_binary, table, nginx_dir) as url:
        assert mismatches(table, url, requests) == []
    # Both outcomes are common, so the agreement says something.
    canaries = sum(expected(table, *request) == "wharf" for request in requests)
    assert 50 < canaries < len(requests) - 50


def test_streaming_and_headers(routed: str) -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB
    with httpx.Client(timeout=10) as client:
        pushed = client.put(f"{routed}/v2/orgb/x/blobs/uploads/u1?digest=sha256:ab", content=blob)
        chunked = client.patch(
            f"{routed}/v2/orgb/x/blobs/uploads/u1", content=iter([blob[:1000], blob[1000:]])
        )
        plain = client.get(f"{routed}/v2/orga/app/manifests/v1", headers={"X-Request-ID": "r-1"})
        fresh = client.get(f"{routed}/v2/orga/app/manifests/v1?n=1&m=%2F")
        odd = client.get(f"{routed}/v2/orga/app/manifests/v1", headers={"X-Request-ID": "a b"})
    for response in (pushed, chunked):
        assert response.headers["x-upstream"] == "wharf"
        assert response.json()["body"] == len(blob)
    assert pushed.json()["target"] == "/v2/orgb/x/blobs/uploads/u1?digest=sha256:ab"
    seen = plain.json()["headers"]
    host = routed.removeprefix("http://")
    assert seen["host"] == host
    assert seen["x-forwarded-host"] == host
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-request-id"] == "r-1"
    assert "connection" not in seen or seen["connection"].lower() != "close"
    assert plain.headers["x-request-id"] == "r-1"
    # No id, or one the edge would not pass on (a space): nginx makes one, both ways.
    for response in (fresh, odd):
        made = response.json()["headers"]["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        assert response.headers["x-request-id"] == made
    assert fresh.json()["target"] == "/v2/orga/app/manifests/v1?n=1&m=%2F"  # as sent


def test_kill_switch_sends_everything_to_one_upstream(
    nginx_binary: str, upstreams: Upstreams, nginx_dir: Path
) -> None:
    table = sample_table(upstreams, "kill_switch: wharf\n")
    requests = [(method, path) for method in ("GET", "PUT") for path in PATHS]
    requests += [("GET", f"/v2/auth?{q}") for q in AUTH_QUERIES]
    with run_nginx(nginx_binary, table, nginx_dir) as url:
        assert set(route_all(url, requests)) == {"wharf"}
        assert mismatches(table, url, requests) == []


@pytest.mark.parametrize(
    ("upstream", "target", "status"),
    [("dead", "/v2/orga/app/manifests/v1", 502), ("slow", "/v2/orga/app/blobs/x?sleep=2", 504)],
)
def test_upstream_failures_answer_in_the_registry_error_format(
    nginx_binary: str,
    upstreams: Upstreams,
    nginx_dir: Path,
    upstream: str,
    target: str,
    status: int,
) -> None:
    table = sample_table(upstreams, f"kill_switch: {upstream}\n")
    with run_nginx(nginx_binary, table, nginx_dir) as url:
        response = httpx.put(url + target, content=b"{}", timeout=10)
    assert response.status_code == status
    assert response.headers["retry-after"] == "1"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.text)["errors"][0]["code"] == "UNAVAILABLE"
