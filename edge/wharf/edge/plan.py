"""`wharf edge plan`: what a new table would change, before it is applied.

Two views, both pure functions of the current and the proposed table:
- `table_changes`: the differences that matter for routing, one line each (an owner, a
  canary's repositories, organisations or percentage, an upstream, the kill switch).
- `plan_requests` / `summarise`: for sample requests (given, or taken from the edge's JSON
  access log), the decision under each table, and which ones would move to another upstream.

Uploads already in flight are not shown as moving: their pins outlive the change.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wharf.edge.routing import Decision, decide
from wharf.edge.table import METHODS, Canary, Capability, RouteTable

MAX_SAMPLES = 100_000
EXAMPLES_PER_MOVE = 3


@dataclass(frozen=True)
class Sample:
    method: str
    path: str
    query: str = ""

    @classmethod
    def of(cls, method: str, path: str) -> Sample:
        """Validate; a `?query` on the path is split off (it matters for `/v2/auth` scopes)."""
        method = method.strip().upper()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}")
        if not path.startswith("/"):
            raise ValueError(f"a path starts with '/': {path!r}")
        path, _, query = path.partition("?")
        return cls(method, path, query)

    @classmethod
    def parse(cls, text: str) -> Sample:
        """`GET /v2/orga/app/manifests/v1`."""
        method, _, path = text.strip().partition(" ")
        if not path.strip():
            raise ValueError(f"expected 'METHOD /path', got {text!r}")
        return cls.of(method, path.strip())

    def label(self) -> str:
        return f"{self.method} {self.path}" + (f"?{self.query}" if self.query else "")


def _decision_json(decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {
        "upstream": decision.upstream,
        "reason": decision.reason,
        "capability": decision.capability,
        "repository": decision.repository,
    }


@dataclass(frozen=True)
class PlannedRequest:
    sample: Sample
    before: Decision | None
    after: Decision | None

    @property
    def moved(self) -> bool:
        upstream = [d.upstream if d else None for d in (self.before, self.after)]
        return upstream[0] != upstream[1]

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.sample.method,
            "path": self.sample.path,
            "query": self.sample.query,
            "before": _decision_json(self.before),
            "after": _decision_json(self.after),
            "moved": self.moved,
        }


def plan_requests(
    old: RouteTable, new: RouteTable, samples: Iterable[Sample]
) -> list[PlannedRequest]:
    return [
        PlannedRequest(
            sample,
            decide(old, sample.method, sample.path, sample.query),
            decide(new, sample.method, sample.path, sample.query),
        )
        for sample in samples
    ]


@dataclass
class Move:
    """Requests of one capability that would go from one upstream to another."""

    capability: str
    source: str | None
    target: str | None
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "capability": self.capability,
            "from": self.source,
            "to": self.target,
            "count": self.count,
            "examples": self.examples,
        }


def summarise(planned: Iterable[PlannedRequest]) -> tuple[list[Move], int]:
    """The moves, largest first, and how many requests stay where they are."""
    moves: dict[tuple[str, str | None, str | None], Move] = {}
    unchanged = 0
    for item in planned:
        if not item.moved:
            unchanged += 1
            continue
        decision = item.after or item.before
        capability = decision.capability if decision else "(none)"
        source = item.before.upstream if item.before else None
        target = item.after.upstream if item.after else None
        move = moves.setdefault((capability, source, target), Move(capability, source, target))
        move.count += 1
        label = item.sample.label()
        if len(move.examples) < EXAMPLES_PER_MOVE and label not in move.examples:
            move.examples.append(label)
    return sorted(moves.values(), key=lambda m: (-m.count, m.capability)), unchanged


def table_changes(old: RouteTable, new: RouteTable) -> list[str]:
    """What differs for routing, in words; empty when both tables route alike."""
    lines: list[str] = []
    if old.kill_switch != new.kill_switch:
        lines.append(f"kill switch: {old.kill_switch or 'off'} -> {new.kill_switch or 'off'}")
    for name in sorted(old.upstreams.keys() | new.upstreams.keys()):
        before, after = old.upstreams.get(name), new.upstreams.get(name)
        if before is None and after is not None:
            lines.append(f"upstream {name}: added ({after.url})")
        elif after is None and before is not None:
            lines.append(f"upstream {name}: removed (was {before.url})")
        elif before != after and before is not None and after is not None:
            lines.append(f"upstream {name}: {_upstream_text(before)} -> {_upstream_text(after)}")
    old_caps = {c.name: c for c in old.capabilities}
    new_caps = {c.name: c for c in new.capabilities}
    for index, capability in enumerate(new.capabilities):
        previous = old_caps.get(capability.name)
        if previous is None:
            following = new.capabilities[index + 1 :]
            place = f"; matched before {following[0].name}" if following else ""
            lines.append(f"{capability.name}: added (owner {capability.owner}{place})")
        else:
            lines += [f"{capability.name}: {line}" for line in _capability(previous, capability)]
    lines += [f"{name}: removed" for name in old_caps if name not in new_caps]
    order = [c.name for c in old.capabilities if c.name in new_caps]
    if order != [c.name for c in new.capabilities if c.name in old_caps]:
        lines.append("matching order: " + ", ".join(c.name for c in new.capabilities))
    return lines


def _upstream_text(upstream: Any) -> str:
    return (
        f"{upstream.url} (connect {upstream.connect_timeout:g}s, read {upstream.read_timeout:g}s,"
        f" {upstream.max_connections} connections)"
    )


def _capability(old: Capability, new: Capability) -> list[str]:
    lines = []
    if old.match != new.match:
        lines.append(f"match {_match_text(old)} -> {_match_text(new)}")
    if old.owner != new.owner:
        lines.append(f"owner {old.owner} -> {new.owner}")
    lines += _canary(old.canary, new.canary)
    return lines


def _match_text(capability: Capability) -> str:
    match = capability.match
    parts = [*match.prefixes] + ([f"~{match.pattern}"] if match.pattern else [])
    methods = ",".join(sorted(match.methods)) or "any method"
    return f"{' '.join(parts)} [{methods}]"


def _canary(old: Canary | None, new: Canary | None) -> list[str]:
    if old == new:
        return []
    if new is None:
        return [f"canary removed (was to {old.upstream if old else '?'})"]
    if old is None:
        old = Canary(upstream=new.upstream)
        lines = [f"canary added, to {new.upstream}"]
    else:
        lines = []
        if old.upstream != new.upstream:
            lines.append(f"canary upstream {old.upstream} -> {new.upstream}")
    for label, before, after in (
        ("repositories", old.repositories, new.repositories),
        ("organisations", old.organisations, new.organisations),
    ):
        added = [item for item in after if item not in before]
        removed = [item for item in before if item not in after]
        if added or removed:
            change = [f"+{item}" for item in added] + [f"-{item}" for item in removed]
            lines.append(f"canary {label} {' '.join(change)}")
    if old.percent != new.percent:
        lines.append(f"canary percent {old.percent:g} -> {new.percent:g}")
    return lines


def yaml_diff(old_text: str, new_text: str, old_label: str, new_label: str) -> str:
    return "".join(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=old_label,
            tofile=new_label,
        )
    )


def sample_from_log_line(line: str) -> Sample | None:
    """One access-log line: the edge's JSON (`{"method": .., "path": .., "query": ..}`, or a
    JSON `message` holding that), or plain `METHOD /path`. None when it is neither."""
    line = line.strip()
    if not line:
        return None
    try:
        if not line.startswith("{"):
            return Sample.parse(line)
        entry = json.loads(line)
        if isinstance(entry, dict) and "method" not in entry:
            message = entry.get("message")
            entry = json.loads(message) if isinstance(message, str) else entry
        if not isinstance(entry, dict):
            return None
        method, path = entry.get("method"), entry.get("path")
        if not isinstance(method, str) or not isinstance(path, str):
            return None
        sample = Sample.of(method, path)
        query = entry.get("query")
        if isinstance(query, str) and query and not sample.query:
            sample = Sample(sample.method, sample.path, query)
        return sample
    except ValueError:  # JSONDecodeError included
        return None


def samples_from_log(lines: Iterable[str]) -> tuple[list[Sample], int]:
    """The requests of an access log, and how many lines were not requests."""
    samples: list[Sample] = []
    skipped = 0
    for line in lines:
        sample = sample_from_log_line(line)
        if sample is None:
            skipped += 1 if line.strip() else 0
        elif len(samples) < MAX_SAMPLES:
            samples.append(sample)
    return samples, skipped


def tail_lines(path: Path, count: int, *, block: int = 64 * 1024) -> list[str]:
    """The last `count` lines of a file, reading backwards: an access log can be large."""
    if count <= 0:
        return []
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        data = b""
        position = end
        while position > 0 and data.count(b"\n") <= count:
            step = min(block, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.decode("utf-8", errors="replace").splitlines()
    if position > 0:
        lines = lines[1:]  # the first one is probably cut
    return lines[-count:]
