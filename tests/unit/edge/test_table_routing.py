"""The route table's validation and the routing decision: pure functions."""

from __future__ import annotations

import pytest

from wharf.edge.routing import bucket, decide, in_percent, murmur2, repository_of, upload_session_of
from wharf.edge.table import DEFAULT_NAMES, TableError, glob_matches, parse_table_yaml

TABLE = """
upstreams:
  legacy: {url: "http://127.0.0.1:5000"}
  wharf: {url: "http://127.0.0.1:8080/"}
default_owner: legacy
capabilities:
  registry-pull:
    canary: {upstream: wharf, repositories: ["orgb/*", "orga/app"], organisations: [orgc],
             percent: 25}
  registry-push:
    canary: {upstream: wharf, repositories: ["orgb/*", "orga/app"], organisations: [orgc]}
  registry-auth:
    canary: {upstream: wharf, repositories: ["orgb/*", "orga/app"], organisations: [orgc]}
  mirror:
    match: {prefix: /api/v1/mirror, methods: [get, POST]}
    owner: wharf
"""


def test_a_valid_table() -> None:
    table = parse_table_yaml(TABLE)
    assert [c.name for c in table.capabilities] == ["mirror", *DEFAULT_NAMES]
    assert table.upstreams["wharf"].url == "http://127.0.0.1:8080"
    assert table.match("GET", "/api/v1/mirror/x").name == "mirror"  # type: ignore[union-attr]
    assert table.match("DELETE", "/api/v1/mirror/x").name == "api"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("method", "path", "query", "upstream", "reason"),
    [
        ("GET", "/v2/", "", "legacy", "owner"),
        ("GET", "/v2/_catalog", "", "legacy", "owner"),
        ("GET", "/v2/orga/app/manifests/v1", "", "wharf", "canary-repo"),
        ("HEAD", "/v2/orgb/x/blobs/sha256:aa", "", "wharf", "canary-repo"),
        ("GET", "/v2/orgb/x/y/tags/list", "", "legacy", "owner"),  # * stops at /
        ("PUT", "/v2/orgc/deep/name/manifests/v1", "", "wharf", "canary-org"),
        ("PATCH", "/v2/orga/other/blobs/uploads/abc", "", "legacy", "owner"),
        (
            "GET",
            "/v2/auth",
            "service=x&scope=repository:orga/app:pull,push",
            "wharf",
            "canary-repo",
        ),
        ("GET", "/v2/auth", "service=x&scope=repository:orgz/app:pull", "legacy", "owner"),
        ("GET", "/v2/auth", "", "legacy", "owner"),
        ("GET", "/_storage_proxy/abc", "", "legacy", "owner"),
        ("GET", "/.well-known/openid-configuration", "", "legacy", "owner"),
        ("GET", "/anything", "", "legacy", "owner"),
    ],
)
def test_decisions(method: str, path: str, query: str, upstream: str, reason: str) -> None:
    decision = decide(parse_table_yaml(TABLE), method, path, query)
    assert decision is not None
    assert (decision.upstream, decision.reason) == (upstream, reason)


def test_precedence_kill_switch_then_sticky() -> None:
    table = parse_table_yaml(TABLE + "kill_switch: legacy\n")
    decision = decide(table, "GET", "/v2/orga/app/manifests/v1", sticky_upstream="wharf")
    assert decision is not None
    assert (decision.upstream, decision.reason) == ("legacy", "kill-switch")
    table = parse_table_yaml(TABLE)
    sticky = decide(table, "PATCH", "/v2/orgz/app/blobs/uploads/u1", sticky_upstream="wharf")
    assert sticky is not None
    assert (sticky.upstream, sticky.reason) == ("wharf", "sticky")
    gone = decide(table, "PATCH", "/v2/orgz/app/blobs/uploads/u1", sticky_upstream="removed")
    assert gone is not None
    assert gone.reason == "owner"  # an upstream no longer in the table is not sticky


def test_percent_is_stable_and_close_to_the_share() -> None:
    table = parse_table_yaml(TABLE)
    names = [f"org{i % 97}/repo{i}" for i in range(20_000)]
    chosen = [decide(table, "GET", f"/v2/{n}/manifests/latest") for n in names]
    share = sum(1 for d in chosen if d is not None and d.reason == "percent") / len(names)
    assert 0.23 < share < 0.27
    again = [decide(table, "GET", f"/v2/{n}/blobs/sha256:00") for n in names]
    assert [d.upstream for d in chosen if d] == [d.upstream for d in again if d]


def test_murmur2_vectors() -> None:
    # MurmurHash2 (seed 0, as nginx's ngx_murmur_hash2) reference values.
    assert murmur2(b"") == 0
    assert murmur2(b"a") == murmur2(b"a")
    assert len({murmur2(bytes([i])) for i in range(256)}) == 256
    assert 0 <= bucket("orga/app") < 100
    assert in_percent("orga/app", 100)
    assert not in_percent("orga/app", 0)


def test_paths() -> None:
    assert repository_of("/v2/a/b/manifests/v1") == "a/b"
    assert repository_of("/v2/a/b/c/blobs/uploads/") == "a/b/c"
    assert repository_of("/v2/a/manifests/v1") is None  # single component: not a repository
    assert repository_of("/v2/A/b/manifests/v1") is None
    assert upload_session_of("/v2/a/b/blobs/uploads/123") == "123"
    assert upload_session_of("/v2/a/b/blobs/uploads/") is None
    assert glob_matches("orgb/*", "orgb/x")
    assert not glob_matches("orgb/*", "orgb/x/y")
    assert glob_matches("org?/ap[pq]", "orgb/app")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("upstreams: {}", "at least one upstream"),
        ("upstreams: {a: {url: ftp://x}}\ndefault_owner: a", "must be http(s)"),
        ("upstreams: {a: http://x}", "no owner"),
        ("upstreams: {a: http://x}\ndefault_owner: b", "default_owner: unknown upstream 'b'"),
        ("upstreams: {a: http://x}\ndefault_owner: a\nkill_switch: z", "kill_switch: unknown"),
        (
            "upstreams: {a: http://x}\ndefault_owner: a\ncapabilities: {nope: {owner: a}}",
            "unknown capability; a new one needs 'match'",
        ),
        (
            "upstreams: {a: http://x}\ndefault_owner: a\ncapabilities:\n"
            "  registry-pull: {canary: {upstream: b, percent: 5}}",
            "canary.upstream: unknown",
        ),
        (
            "upstreams: {a: http://x}\ndefault_owner: a\ncapabilities:\n"
            "  registry-pull: {canary: {upstream: a, repositories: ['no-slash']}}",
            "bad glob",
        ),
        (
            "upstreams: {a: http://x}\ndefault_owner: a\ncapabilities:\n"
            "  registry-pull: {canary: {upstream: a, percent: 10.555}}",
            "at most 2 decimals",
        ),
        (
            "upstreams: {a: http://x}\ndefault_owner: a\ncapabilities:\n"
            "  registry-pull: {canary: {upstream: a}}",
            "selects nothing",
        ),
        (
            "upstreams: {a: http://x}\ndefault_owner: a\ncapabilities:\n"
            "  one: {match: {prefix: /x}}\n  two: {match: {prefix: /x/y}}",
            "two: unreachable",
        ),
        (
            "upstreams: {a: http://x}\ndefault_owner: a\ncapabilities:\n"
            "  one: {match: {pattern: '(['}}",
            "not a regular expression",
        ),
        (
            "upstreams: {a: http://x}\ndefault_owner: a\ncapabilities:\n"
            "  api: {match: {prefix: /y}}",
            "a default capability's match cannot change",
        ),
        ("upstreams: {a: http://x}\ndefault_owner: a\nextra: 1", "unknown key 'extra'"),
        ("- not a mapping", "must be a mapping"),
        ("upstreams: [", "not valid YAML"),
    ],
)
def test_refusals(text: str, problem: str) -> None:
    with pytest.raises(TableError) as raised:
        parse_table_yaml(text)
    assert any(problem in p for p in raised.value.problems), raised.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(TableError) as raised:
        parse_table_yaml("upstreams: {a: http://x}\ndefault_owner: b\nkill_switch: c\nzz: 1")
    assert len(raised.value.problems) >= 3
