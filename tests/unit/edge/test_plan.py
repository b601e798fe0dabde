"""`wharf edge plan`: table differences, per-request decisions, access-log parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wharf.edge.plan import (
    Sample,
    plan_requests,
    sample_from_log_line,
    samples_from_log,
    summarise,
    table_changes,
    tail_lines,
    yaml_diff,
)
from wharf.edge.table import parse_table_yaml

OLD = """
upstreams:
  legacy: {url: "http://legacy:5000"}
  wharf: {url: "http://wharf:8080"}
default_owner: legacy
capabilities:
  registry-pull:
    canary: {upstream: wharf, repositories: ["orgb/*"], organisations: [orgc], percent: 10}
"""
NEW = """
upstreams:
  legacy: {url: "http://legacy:5000"}
  wharf: {url: "http://wharf:8080", read_timeout: 60}
  spare: {url: "http://spare:8080"}
default_owner: legacy
capabilities:
  registry-pull:
    canary: {upstream: wharf, repositories: ["orgb/*", "orga/app"], percent: 20}
  registry-push:
    canary: {upstream: wharf, organisations: [orga]}
  api: {owner: wharf}
  mirror:
    match: {prefix: /api/v1/mirror}
    owner: spare
kill_switch: null
"""


def test_table_changes_name_every_routing_difference() -> None:
    changes = table_changes(parse_table_yaml(OLD), parse_table_yaml(NEW))
    assert "upstream spare: added (http://spare:8080)" in changes
    assert any(
        c.startswith("upstream wharf: http://wharf:8080") and "read 60s" in c for c in changes
    )
    assert "registry-pull: canary repositories +orga/app" in changes
    assert "registry-pull: canary organisations -orgc" in changes
    assert "registry-pull: canary percent 10 -> 20" in changes
    assert "registry-push: canary added, to wharf" in changes
    assert "registry-push: canary organisations +orga" in changes
    assert "api: owner legacy -> wharf" in changes
    assert "mirror: added (owner spare; matched before registry-auth)" in changes
    assert not any(c.startswith("matching order") for c in changes)  # the others kept theirs


def test_table_changes_report_a_new_matching_order() -> None:
    two = """
upstreams: {legacy: "http://legacy:5000"}
default_owner: legacy
capabilities:
  first: {match: {prefix: /api/v1/a}}
  second: {match: {prefix: /api/v1/b}}
"""
    swapped = (
        two.replace("first:", "third:").replace("second:", "first:").replace("third:", "second:")
    )
    changes = table_changes(parse_table_yaml(two), parse_table_yaml(swapped))
    assert "first: match /api/v1/a [any method] -> /api/v1/b [any method]" in changes
    assert changes[-1].startswith("matching order: second, first, registry-auth")


def test_table_changes_in_reverse_and_kill_switch() -> None:
    killed = parse_table_yaml(OLD + "kill_switch: legacy\n")
    changes = table_changes(parse_table_yaml(NEW), killed)
    assert "kill switch: off -> legacy" in changes
    assert "upstream spare: removed (was http://spare:8080)" in changes
    assert "registry-push: canary removed (was to wharf)" in changes
    assert "mirror: removed" in changes


def test_identical_tables_have_no_changes() -> None:
    assert table_changes(parse_table_yaml(OLD), parse_table_yaml(OLD)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /v2/orga/app/manifests/v1", Sample("GET", "/v2/orga/app/manifests/v1")),
        ("head /v2/", Sample("HEAD", "/v2/")),
        (
            "GET /v2/auth?service=x&scope=repository:orga/app:pull",
            Sample("GET", "/v2/auth", "service=x&scope=repository:orga/app:pull"),
        ),
    ],
)
def test_samples_parse(text: str, expected: Sample) -> None:
    assert Sample.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("GET", "expected 'METHOD /path'"),
        ("FETCH /v2/", "unknown method 'FETCH'"),
        ("GET v2/x", "a path starts with '/'"),
        ("", "expected 'METHOD /path'"),
    ],
)
def test_bad_samples_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Sample.parse(text)


def test_plan_shows_which_requests_move() -> None:
    old, new = parse_table_yaml(OLD), parse_table_yaml(NEW)
    samples = [
        Sample.parse("GET /v2/orga/app/manifests/v1"),
        Sample.parse("HEAD /v2/orga/app/blobs/sha256:00"),
        Sample.parse("GET /v2/orgc/x/manifests/v1"),
        Sample.parse("GET /v2/orgb/x/manifests/v1"),
        Sample.parse("POST /v2/orga/app/blobs/uploads/"),
        Sample.parse("GET /v2/auth?scope=repository:orga/app:pull"),
        Sample.parse("GET /api/v1/mirror/x"),
    ]
    planned = plan_requests(old, new, samples)
    moved = {p.sample.label(): p for p in planned if p.moved}
    first = moved["GET /v2/orga/app/manifests/v1"]
    assert (first.before.upstream, first.before.reason) == ("legacy", "owner")  # type: ignore[union-attr]
    assert (first.after.upstream, first.after.reason) == ("wharf", "canary-repo")  # type: ignore[union-attr]
    assert "POST /v2/orga/app/blobs/uploads/" in moved  # registry-push canary by organisation
    assert "GET /api/v1/mirror/x" in moved
    orgb = next(p for p in planned if p.sample.path.startswith("/v2/orgb/"))
    assert not orgb.moved
    assert orgb.after.reason == "canary-repo"
    # /v2/auth has no canary in either table: it follows registry-auth's owner.
    assert not next(p for p in planned if p.sample.path == "/v2/auth").moved
    as_json = first.to_json()
    assert as_json["moved"] is True
    assert as_json["after"]["capability"] == "registry-pull"

    moves, unchanged = summarise(planned)
    assert unchanged == len(samples) - len(moved)
    pull = next(m for m in moves if m.capability == "registry-pull")
    assert (pull.source, pull.target, pull.count) == ("legacy", "wharf", 2)
    assert pull.examples == [
        "GET /v2/orga/app/manifests/v1",
        "HEAD /v2/orga/app/blobs/sha256:00",
    ]


def test_summary_keeps_a_few_distinct_examples() -> None:
    old, new = parse_table_yaml(OLD), parse_table_yaml(NEW)
    samples = [Sample.parse(f"GET /v2/orga/app/manifests/v{i % 5}") for i in range(50)]
    (move,), unchanged = summarise(plan_requests(old, new, samples))
    assert move.count == 50
    assert unchanged == 0
    assert len(move.examples) == 3
    assert len(set(move.examples)) == 3


def test_access_log_lines() -> None:
    edge_line = json.dumps(
        {
            "time": "2025-01-01T00:00:00.000+00:00",
            "method": "GET",
            "path": "/v2/auth",
            "query": "scope=repository:orga/app:pull",
            "status": 200,
            "upstream": "legacy",
            "reason": "owner",
            "capability": "registry-auth",
        }
    )
    assert sample_from_log_line(edge_line) == Sample(
        "GET", "/v2/auth", "scope=repository:orga/app:pull"
    )
    wrapped = json.dumps({"level": "info", "message": json.dumps({"method": "PUT", "path": "/x"})})
    assert sample_from_log_line(wrapped) == Sample("PUT", "/x")
    assert sample_from_log_line("DELETE /v2/orga/app/manifests/sha256:00") == Sample(
        "DELETE", "/v2/orga/app/manifests/sha256:00"
    )
    for junk in ["{not json", '{"method": 1, "path": "/"}', "[1, 2]", "uvicorn started", "   "]:
        assert sample_from_log_line(junk) is None
    samples, skipped = samples_from_log([edge_line, "", "garbage line", wrapped])
    assert len(samples) == 2
    assert skipped == 1


def test_tail_lines_reads_backwards(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("".join(f"line {i}\n" for i in range(10_000)))
    assert tail_lines(log, 3, block=64) == ["line 9997", "line 9998", "line 9999"]
    assert tail_lines(log, 0) == []
    assert len(tail_lines(log, 20_000)) == 10_000
    short = tmp_path / "short.log"
    short.write_text("a\nb")  # no newline at the end
    assert tail_lines(short, 5) == ["a", "b"]
    empty = tmp_path / "empty.log"
    empty.write_text("")
    assert tail_lines(empty, 5) == []


def test_yaml_diff_is_a_unified_diff() -> None:
    diff = yaml_diff("a: 1\nb: 2\n", "a: 1\nb: 3\n", "v1", "proposed")
    assert diff.startswith("--- v1\n+++ proposed\n")
    assert "-b: 2\n+b: 3\n" in diff
