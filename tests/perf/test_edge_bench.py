"""Edge benchmark (`make bench`): what the edge adds in front of Wharf's registry, with Debian's
nginx measured the same way in the same run (issue 4, "Measured, not asserted").

Five targets in front of one kind of upstream, all on loopback ports started here:

* direct: Wharf's registry alone (`wharf serve --service registry --mode mirror`);
* edge: `wharf edge serve` (its own process) in front of that registry;
* nginx: Debian's nginx in front of that registry (when /usr/sbin/nginx exists);
* relay: a bare zero-copy (splice) relay in front of it (relay.py): no HTTP, the ceiling for
  any proxy in its own process here, a reference for the two above;
* all: `wharf serve --service all`, the edge in process in front of its own registry on one
  port (what `make run` runs); its own data dir, so the blobs it serves are its own.

Measured:

* Manifest HEAD by tag, `HEADS` sequential requests per run on one keep-alive connection
  (http.client, the cheapest client there is, so the client's share of the latency stays
  small and equal): p50 and p99 per run; added latency = target - direct.
* 1 GiB blob push (POST + one streamed PUT ?digest=) and pulls (GET) through every target: a
  new blob per push, pulled `PULLS_PER_PUSH` times, its file deleted once pulled (see
  test_registry_bench.discard).
* For both: the CPU the proxy and the registry spent (what a proxy costs, noise or not),
  and how busy the machine was with other work meanwhile (MachineMeter).

An untimed warm-up per target first, then `RUNS` rounds with the targets' order reversed every
round, so drift on the shared 2-vCPU machine hits all alike. The headline is the best run,
the median is recorded too. Nothing is asserted about speed; a missing nginx skips only its
part (reported, and a failure under CI=true), after the rest was measured. Results go to
bench-results/edge.json and the edge section of bench-results/summary.md.

Environment: WHARF_BENCH_RUNS (rounds, 3), WHARF_BENCH_BLOB_MIB (blob size, 1024),
WHARF_BENCH_HEADS (HEADs per run, 3000), WHARF_BENCH_KEEP_BLOBS=1 (keep pushed blobs),
WHARF_BENCH_EDGE_UVLOOP=1 (also the edge under uvloop, `edge-uvloop`: a diagnostic).
"""

from __future__ import annotations

import asyncio
import http.client
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from tests.perf import benchlib as bl
from tests.perf import edgereport
from tests.perf import edgeservers as es
from tests.perf import registryclient as rc
from tests.perf import registryservers as rs
from tests.perf.test_registry_bench import discard
from tests.servers import unavailable

BLOB_BLOCKS = int(os.environ.get("WHARF_BENCH_BLOB_MIB", "1024"))
"""Blob size in MiB; 1 GiB unless overridden (a smaller one makes a quick trial run)."""
WARMUP_BLOCKS = 64
"""The per-target warm-up blob in MiB: enough to open connections and run every code path."""
HEADS = int(os.environ.get("WHARF_BENCH_HEADS", "3000"))
HEAD_UNTIMED = 100
"""Untimed HEADs at the start of every run: the new connection's first requests."""
WARMUP_HEADS = 300
TAG = "v1"
MANIFEST_PATH = f"/v2/{rc.IMAGE_REPO}/manifests/{TAG}"
PULLS_PER_PUSH = 3
"""A direct pull takes a third of a second here, short enough for a burst of other work on
the shared machine to halve it: each round pulls every pushed blob this many times."""
WITH_UVLOOP_EDGE = os.environ.get("WHARF_BENCH_EDGE_UVLOOP") == "1"
"""Also measure the edge under uvloop (a diagnostic: `wharf edge serve` runs on asyncio's own
loop, `wharf serve` on uvloop); off by default to keep `make bench` short."""


@dataclass
class Target:
    """One way to reach a registry: the server the client talks to, the registry process
    behind it and the proxy process in between (None when the client talks to a registry)."""

    name: str
    server: rs.Server
    registry: psutil.Process
    proxy: psutil.Process | None = None

    def front_pid(self) -> int:
        """The process that handles the client's bytes (nginx: its one worker)."""
        front = self.registry if self.proxy is None else self.proxy
        children = front.children()
        pid: int = children[0].pid if children else front.pid
        return pid


def cpu_seconds(process: psutil.Process | None) -> float:
    """User + system CPU of a process and its children (nginx's worker is the master's child)."""
    if process is None:
        return 0.0
    total = 0.0
    for each in (process, *process.children(recursive=True)):
        times = each.cpu_times()
        total += times.user + times.system
    return total


@dataclass
class CpuMeter:
    """CPU seconds a target's proxy and registry, and this client, spent between `start()` and
    `stop()`: the proxy's CPU per request or per GiB is what it costs, whatever the noise."""

    target: Target
    proxy_s: float = 0.0
    registry_s: float = 0.0
    client_s: float = 0.0

    def start(self) -> None:
        self.proxy_s = -cpu_seconds(self.target.proxy)
        self.registry_s = -cpu_seconds(self.target.registry)
        self.client_s = -time.process_time()

    def stop(self) -> None:
        self.proxy_s += cpu_seconds(self.target.proxy)
        self.registry_s += cpu_seconds(self.target.registry)
        self.client_s += time.process_time()


class MachineMeter:
    """How much of the two vCPUs other work took during a part (other jobs share this VM, and
    the hypervisor may steal time): a proxy's numbers are only as clean as that."""

    def __init__(self) -> None:
        self._me = psutil.Process()
        self._started = time.monotonic()
        self._busy, self._steal = self._machine()
        self._own = cpu_seconds(self._me)  # this process and every server it started

    @staticmethod
    def _machine() -> tuple[float, float]:
        times = psutil.cpu_times()
        busy = times.user + times.nice + times.system + times.irq + times.softirq
        return busy, times.steal

    def result(self) -> dict[str, float]:
        wall = time.monotonic() - self._started
        busy, steal = self._machine()
        own = cpu_seconds(self._me) - self._own
        busy -= self._busy
        return {
            "seconds": round(wall, 1),
            "cpus_busy": round(busy / wall, 2),
            "cpus_busy_with_this_bench": round(own / wall, 2),
            "cpus_busy_with_other_work": round(max(busy - own, 0.0) / wall, 2),
            "cpus_stolen": round((steal - self._steal) / wall, 2),
        }


def ordered(round_number: int, names: list[str]) -> list[str]:
    return names if round_number % 2 == 0 else names[::-1]


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    """Collects every part; written and printed once, even when a part fails or skips."""
    data: dict[str, Any] = {
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "servers": {},
        "machine": {},
        "skipped": {},
        "notes": [],
    }
    yield data
    print("\n" + edgereport.write(data))


@pytest.fixture(scope="module")
def targets(report: dict[str, Any]) -> Iterator[dict[str, Target]]:
    if not rs.wharf_available():
        report["skipped"]["all"] = f"{rs.WHARF_BIN} is missing (make bench installs it)"
        unavailable(f"the wharf command ({rs.WHARF_BIN})")
    with ExitStack() as stack:
        scratch = stack.enter_context(bl.scratch_dir(f"edge-{uuid.uuid4().hex[:12]}"))
        registry = stack.enter_context(rs.wharf(scratch, "registry", "registry"))
        registry_process = psutil.Process(registry.pid)

        def proxied(server: rs.Server) -> Target:
            return Target(server.name, server, registry_process, psutil.Process(server.pid))

        found = [Target("direct", registry, registry_process)]
        found.append(proxied(stack.enter_context(es.edge(scratch, registry))))
        if WITH_UVLOOP_EDGE:
            found.append(proxied(stack.enter_context(es.edge(scratch, registry, uvloop=True))))
        if es.nginx_available():
            found.append(proxied(stack.enter_context(es.nginx(scratch, registry))))
        else:
            report["skipped"]["nginx"] = f"Debian's nginx ({es.NGINX_BIN}) is not installed"
        found.append(proxied(stack.enter_context(es.relay(scratch, registry))))
        # Its own data dir: `all` serves the blobs and manifests pushed through it.
        whole = stack.enter_context(rs.wharf(scratch, "all", "wharf-all"))
        found.append(Target("all", whole, psutil.Process(whole.pid)))
        for target in found:
            report["servers"][target.name] = {
                "version": target.server.version,
                "url": target.server.base_url,
            }
        yield {target.name: target for target in found}


def nginx_part_skipped() -> None:
    """Called at the end of a test that measured everything else."""
    if not es.nginx_available():
        unavailable(f"Debian's nginx ({es.NGINX_BIN}, package nginx)")


# -- manifest HEAD latency -------------------------------------------------------------------


@dataclass
class HeadRun:
    """One run of sequential HEADs: each request's seconds, and the CPU it cost."""

    seconds: list[float]
    cpu: CpuMeter

    def percentile_ms(self, fraction: float) -> float:
        ranked = sorted(self.seconds)
        return ranked[min(len(ranked) - 1, int(fraction * len(ranked)))] * 1e3

    def as_dict(self) -> dict[str, Any]:
        count = len(self.seconds)
        return {
            "requests": count,
            "p50_ms": round(self.percentile_ms(0.50), 4),
            "p90_ms": round(self.percentile_ms(0.90), 4),
            "p99_ms": round(self.percentile_ms(0.99), 4),
            "max_ms": round(max(self.seconds) * 1e3, 3),
            "mean_ms": round(statistics.fmean(self.seconds) * 1e3, 4),
            "proxy_cpu_ms_per_request": round(self.cpu.proxy_s / count * 1e3, 4),
            "registry_cpu_ms_per_request": round(self.cpu.registry_s / count * 1e3, 4),
            "client_cpu_ms_per_request": round(self.cpu.client_s / count * 1e3, 4),
        }


def sequential_heads(server: rs.Server, count: int, untimed: int = HEAD_UNTIMED) -> list[float]:
    """`untimed` then `count` timed HEADs of the manifest, one after another on one keep-alive
    connection; each timed request's seconds. Any answer but 200 fails the run."""
    parts = urlsplit(server.base_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    headers = {**server.headers, "Accept": rc.OCI_MANIFEST}
    seconds: list[float] = []
    clock = time.perf_counter
    try:
        for index in range(untimed + count):
            started = clock()
            connection.request("HEAD", MANIFEST_PATH, headers=headers)
            response = connection.getresponse()
            response.read()
            elapsed = clock() - started
            if response.status != 200:
                raise AssertionError(f"{server.name}: HEAD {MANIFEST_PATH}: {response.status}")
            if index >= untimed:
                seconds.append(elapsed)
    finally:
        connection.close()
    return seconds


async def test_manifest_head_latency(report: dict[str, Any], targets: dict[str, Target]) -> None:
    async with rc.session() as client:
        # direct, the edges and nginx share one registry; `all` is a registry of its own.
        await rc.push_image(client, targets["direct"].server, TAG)
        await rc.push_image(client, targets["all"].server, TAG)
    names = list(targets)
    machine = MachineMeter()
    # Each run goes to a thread and the event loop waits idle meanwhile, so the client is one
    # busy thread (http.client: far cheaper per request than an asyncio client).
    for name in names:
        await asyncio.to_thread(sequential_heads, targets[name].server, WARMUP_HEADS)
    runs: dict[str, list[HeadRun]] = {name: [] for name in names}
    for number in range(bl.RUNS):
        for name in ordered(number, names):
            meter = CpuMeter(targets[name])
            meter.start()
            seconds = await asyncio.to_thread(sequential_heads, targets[name].server, HEADS)
            meter.stop()
            runs[name].append(HeadRun(seconds, meter))
    report["machine"]["head"] = machine.result()
    report["head"] = head_record(runs, targets)
    nginx_part_skipped()


def head_record(runs: dict[str, list[HeadRun]], targets: dict[str, Target]) -> dict[str, Any]:
    by_target: dict[str, Any] = {}
    for name, target_runs in runs.items():
        dicts = [run.as_dict() for run in target_runs]
        proxy_cpu = min(d["proxy_cpu_ms_per_request"] for d in dicts)
        by_target[name] = {
            "runs": dicts,
            "best_p50_ms": min(d["p50_ms"] for d in dicts),
            "best_p99_ms": min(d["p99_ms"] for d in dicts),
            "median_p50_ms": round(statistics.median(d["p50_ms"] for d in dicts), 4),
            "median_p99_ms": round(statistics.median(d["p99_ms"] for d in dicts), 4),
            "proxy_cpu_ms_per_request": proxy_cpu if targets[name].proxy else None,
            "registry_cpu_ms_per_request": min(d["registry_cpu_ms_per_request"] for d in dicts),
        }
    direct = by_target["direct"]
    for name, mine in by_target.items():
        if name == "direct":
            continue
        mine["added_p50_ms"] = round(mine["best_p50_ms"] - direct["best_p50_ms"], 4)
        mine["added_p99_ms"] = round(mine["best_p99_ms"] - direct["best_p99_ms"], 4)
        # Against the direct run of the same round: less exposed to one lucky run.
        mine["added_p50_ms_same_round_median"] = round(
            statistics.median(
                a["p50_ms"] - b["p50_ms"] for a, b in zip(mine["runs"], direct["runs"], strict=True)
            ),
            4,
        )
    return {
        "requests": HEADS,
        "untimed_per_run": HEAD_UNTIMED,
        "path": MANIFEST_PATH,
        "targets": by_target,
        "target_added_p50_ms": edgereport.ADDED_P50_TARGET_MS,
        "meets_target": by_target["edge"]["added_p50_ms"] <= edgereport.ADDED_P50_TARGET_MS,
    }


# -- 1 GiB blob push and pull ----------------------------------------------------------------


@dataclass
class BlobCase:
    """One target's runs of one case: wall time, CPU, and the front process's RSS growth."""

    runs: bl.Runs
    cpu: list[CpuMeter] = field(default_factory=list)
    growth: list[int] = field(default_factory=list)


CASES = ("push", "pull")


async def test_blob_throughput(report: dict[str, Any], targets: dict[str, Target]) -> None:
    source = rc.BlobSource(BLOB_BLOCKS)
    warmup = rc.BlobSource(WARMUP_BLOCKS, block=source.block)
    names = list(targets)
    records = {(name, case): BlobCase(bl.Runs(source.size)) for name in names for case in CASES}

    async def measured(name: str, case: str, step: Awaitable[int]) -> int:
        target, record = targets[name], records[(name, case)]
        if case == "push":
            # The previous push's writeback must not slow this one; in a thread, so that the
            # loop keeps handling its sockets meanwhile.
            await asyncio.to_thread(bl.settle_disk)
        meter = CpuMeter(target)
        front = target.front_pid()
        at_start = rs.rss(front)
        meter.start()
        with rs.PeakRSS(front) as peak, bl.Stopwatch(record.runs):
            count = await step
        meter.stop()
        record.cpu.append(meter)
        record.growth.append(peak.bytes - at_start)
        return count

    machine = MachineMeter()
    async with rc.session() as client:
        # Warm-up, untimed: one full-size blob pushed and freed, so that even the first timed
        # push follows a freed GiB (see `discard`), then a small one through every target.
        direct = targets["direct"].server
        last, digest = source.new()
        await rc.push_whole(client, direct, source, last, digest)
        discard(report, direct, digest)
        for name in names:
            server = targets[name].server
            last, digest = warmup.new()
            await rc.push_whole(client, server, warmup, last, digest)
            assert await rc.pull(client, server, digest) == warmup.size
            discard(report, server, digest)

        for number in range(bl.RUNS):
            for name in ordered(number, names):
                server = targets[name].server
                last, digest = source.new()
                # Coroutines are created here and run inside `measured`, under its timer.
                await measured(name, "push", rc.push_whole(client, server, source, last, digest))
                for _ in range(PULLS_PER_PUSH):
                    pulled = await measured(name, "pull", rc.pull(client, server, digest))
                    assert pulled == source.size, f"{name}: pulled {pulled} of {source.size} B"
                discard(report, server, digest)

    report["machine"]["blob"] = machine.result()
    report["blob"] = blob_record(records, targets)
    nginx_part_skipped()


def blob_record(
    records: dict[tuple[str, str], BlobCase], targets: dict[str, Target]
) -> dict[str, Any]:
    per_gib = bl.GiB / (BLOB_BLOCKS * bl.MiB)

    def median_per_gib(values: list[float]) -> float:
        return round(statistics.median(values) * per_gib, 2)

    def target_dict(name: str, case: BlobCase) -> dict[str, Any]:
        proxied = targets[name].proxy is not None
        return {
            **case.runs.as_dict(),
            "proxy_cpu_s_per_gib": (
                median_per_gib([m.proxy_s for m in case.cpu]) if proxied else None
            ),
            "registry_cpu_s_per_gib": median_per_gib([m.registry_s for m in case.cpu]),
            "client_cpu_s_per_gib": median_per_gib([m.client_s for m in case.cpu]),
            "front_peak_growth_mib": round(max(case.growth) / bl.MiB, 1),
        }

    result: dict[str, Any] = {
        "object_bytes": BLOB_BLOCKS * bl.MiB,
        "pulls_per_push": PULLS_PER_PUSH,
        "cases": {},
    }
    for case in CASES:
        runs = {name: records[(name, case)].runs for name in targets}
        ratios = {
            f"{name}/direct": ratio(runs[name], runs["direct"]) for name in runs if name != "direct"
        }
        for reference in ("nginx", "relay"):
            if reference in runs:
                ratios[f"edge/{reference}"] = ratio(runs["edge"], runs[reference])
        result["cases"][case] = {
            "targets": {name: target_dict(name, records[(name, case)]) for name in targets},
            "ratios": ratios,
            "meets_target": ratios["edge/direct"]["best"] >= edgereport.RATIO_TARGET,
        }
    result["target_ratio"] = edgereport.RATIO_TARGET
    result["meets_target"] = all(result["cases"][case]["meets_target"] for case in CASES)
    # Bounded memory is part of streaming: a proxy that buffered a blob would grow by GiBs.
    result["front_peak_growth_mib"] = {
        name: round(max(max(records[(name, case)].growth) for case in CASES) / bl.MiB, 1)
        for name in targets
    }
    return result


def ratio(mine: bl.Runs, base: bl.Runs) -> dict[str, float]:
    return {
        "best": round(mine.best() / base.best(), 3),
        "median": round(mine.median() / base.median(), 3),
    }
