"""Digest benchmarks (`make bench`): ResumableSHA256 against hashlib on the same machine.

Measures and records; asserts only that the digests agree. Results go to
bench-results/digest.json and the Digest section of bench-results/summary.md.

* Throughput: 1 GiB hashed in 1 MiB `update()` calls from one pre-generated block, for
  hashlib.sha256, ResumableSHA256, and ResumableSHA256 exporting its state to Quay's text
  format and resuming from it after every 16 MiB (what a chunked upload does per PATCH).
  One untimed warm-up round, then `RUNS` rounds with the cases interleaved. Target: 1 GB/s.
* State: microseconds per export/import (pickle bytes and base64 text).
* Threads: two threads hashing at once, to show the GIL is released during updates.
* Streaming: StreamingDigester over 256 MiB per chunk size, every chunk hashed inline on the
  event loop versus every chunk in the executor: throughput, and event-loop CPU per chunk
  (the time the loop cannot serve anyone else). This is what OFFLOAD_THRESHOLD is based on.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.perf import benchlib as bl
from wharf.digest import OFFLOAD_THRESHOLD, ResumableSHA256, StreamingDigester, self_test

TOTAL = 1 * bl.GiB
BLOCK = bl.MiB
RESUME_EVERY = 16 * bl.MiB
STREAM_TOTAL = 256 * bl.MiB
STREAM_CHUNKS = (64 * bl.KiB, 256 * bl.KiB, bl.MiB, 4 * bl.MiB)
TARGET_MB_S = 1000.0
SECTION_BEGIN = "<!-- digest-bench:begin -->"
SECTION_END = "<!-- digest-bench:end -->"

Hashing = Callable[[bytes], bytes]


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    data: dict[str, Any] = {"engine": self_test().library or f"fallback: {self_test().reason}"}
    yield data
    print("\n" + write_report(data))


@pytest.fixture(scope="module")
def block() -> bytes:
    return os.urandom(BLOCK)


# -- cases -----------------------------------------------------------------------------------


def with_hashlib(block: bytes) -> bytes:
    hasher = hashlib.sha256()
    for _ in range(TOTAL // BLOCK):
        hasher.update(block)
    return hasher.digest()


def with_resumable(block: bytes) -> bytes:
    hasher = ResumableSHA256()
    for _ in range(TOTAL // BLOCK):
        hasher.update(block)
    return hasher.digest()


def with_resumable_and_resumes(block: bytes) -> bytes:
    hasher = ResumableSHA256()
    for index in range(1, TOTAL // BLOCK + 1):
        hasher.update(block)
        if index * BLOCK % RESUME_EVERY == 0:
            hasher = ResumableSHA256.from_state_text(hasher.export_state_text())
    return hasher.digest()


CASES: dict[str, Hashing] = {
    "hashlib.sha256": with_hashlib,
    "ResumableSHA256": with_resumable,
    "ResumableSHA256 + export/import every 16 MiB": with_resumable_and_resumes,
}


def test_throughput(report: dict[str, Any], block: bytes) -> None:
    runs = {name: bl.Runs(TOTAL) for name in CASES}
    names = list(CASES)
    if not self_test().available:
        names.remove("ResumableSHA256 + export/import every 16 MiB")
    expected = with_hashlib(block)
    for name in names:  # warm-up
        assert CASES[name](block) == expected
    for round_ in range(bl.RUNS):
        for name in names if round_ % 2 == 0 else reversed(names):
            with bl.Stopwatch(runs[name]):
                digest = CASES[name](block)
            assert digest == expected
    report["throughput"] = {name: runs[name].as_dict() for name in names}
    sha512 = bl.Runs(TOTAL)
    with bl.Stopwatch(sha512):
        hasher = hashlib.sha512()
        for _ in range(TOTAL // BLOCK):
            hasher.update(block)
    report["throughput"]["hashlib.sha512 (reference, 1 run)"] = sha512.as_dict()


def test_state_cost(report: dict[str, Any], block: bytes) -> None:
    if not self_test().available:
        pytest.skip("resumable SHA-256 unavailable")
    hasher = ResumableSHA256(block[:1000])
    state, text = hasher.export_state(), hasher.export_state_text()
    count = 100_000
    timings = {
        "export_state": lambda: hasher.export_state(),
        "from_state": lambda: ResumableSHA256.from_state(state),
        "export_state_text": lambda: hasher.export_state_text(),
        "from_state_text": lambda: ResumableSHA256.from_state_text(text),
    }
    result: dict[str, Any] = {"state_bytes": len(state), "state_text_chars": len(text)}
    for name, call in timings.items():
        started = time.perf_counter()
        for _ in range(count):
            call()
        result[f"{name}_us"] = round((time.perf_counter() - started) / count * 1e6, 2)
    report["state"] = result


def test_two_threads(report: dict[str, Any], block: bytes) -> None:
    """Two threads, each hashing half the data with its own hasher, against one thread.

    hashlib (which releases the GIL for updates of 2 KiB and more) is the control: on a
    machine whose second CPU is busy with other work, neither can scale.
    """
    result: dict[str, Any] = {}
    for name, factory in (("ResumableSHA256", ResumableSHA256), ("hashlib.sha256", hashlib.sha256)):

        def half(factory: Callable[[], Any] = factory) -> None:
            hasher = factory()
            for _ in range(TOTAL // BLOCK // 2):
                hasher.update(block)

        one, two = bl.Runs(TOTAL), bl.Runs(TOTAL)
        for _ in range(bl.RUNS):
            with bl.Stopwatch(one):
                half()
                half()
            with bl.Stopwatch(two):
                workers = [threading.Thread(target=half) for _ in range(2)]
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
        result[name] = {
            "one_thread": one.as_dict(),
            "two_threads": two.as_dict(),
            "speedup": round(two.best() / one.best(), 2),
        }
    report["threads"] = result


async def repeated(chunk: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield chunk


async def stream_once(chunk: bytes, threshold: int) -> tuple[float, float]:
    """(wall seconds, event-loop thread CPU seconds) to digest STREAM_TOTAL bytes."""
    digester = StreamingDigester(ResumableSHA256(), offload_threshold=threshold)
    cpu, wall = time.thread_time(), time.perf_counter()
    await digester.consume(repeated(chunk, STREAM_TOTAL // len(chunk)))
    return time.perf_counter() - wall, time.thread_time() - cpu


async def test_streaming_offload(report: dict[str, Any]) -> None:
    modes = {"inline": 1 << 62, "thread": 0}
    result: dict[str, Any] = {"offload_threshold": OFFLOAD_THRESHOLD, "chunks": {}}
    for size in STREAM_CHUNKS:
        chunk = os.urandom(size)
        chunks = STREAM_TOTAL // size
        measured: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
        for _ in range(bl.RUNS):
            for mode, threshold in modes.items():
                measured[mode].append(await stream_once(chunk, threshold))
        result["chunks"][str(size)] = {
            mode: {
                "best_mb_s": round(STREAM_TOTAL / min(w for w, _ in runs) / bl.MB, 1),
                "loop_cpu_us_per_chunk": round(min(c for _, c in runs) / chunks * 1e6, 1),
            }
            for mode, runs in measured.items()
        }
    report["streaming"] = result


# -- results ---------------------------------------------------------------------------------


def write_report(data: dict[str, Any]) -> str:
    data = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": bl.host_info(),
        "method": {
            "mb": "10^6 bytes",
            "runs": bl.RUNS,
            "data": "1 GiB as 1,024 update() calls of one 1 MiB random block",
            "headline": "best of the runs; the median is recorded too",
            "target_mb_s": TARGET_MB_S,
        },
        **data,
    }
    throughput = data.get("throughput", {})
    if "ResumableSHA256" in throughput:
        data["meets_target"] = throughput["ResumableSHA256"]["best_mb_s"] >= TARGET_MB_S
    return bl.publish("digest", data, render_markdown(data), SECTION_BEGIN, SECTION_END)


def render_markdown(data: dict[str, Any]) -> str:
    host = data["host"]
    lines = [
        "## Digest",
        "",
        f"Run {data['generated_at']} on {host['hostname']} ({host['cpus']} CPUs, Python "
        f"{host['python']}), engine {data['engine']}. 1 GiB in 1 MiB updates; MB/s is "
        f"10^6 bytes/s, best of {bl.RUNS} runs (median in brackets); target >= "
        f"{TARGET_MB_S:.0f} MB/s for ResumableSHA256. Load average at the end: "
        f"{host['load_average_1_5_15'][0]}.",
        "",
        "| Case | MB/s | Meets 1 GB/s |",
        "|---|---:|:---:|",
    ]
    for name, runs in data.get("throughput", {}).items():
        meets = runs["best_mb_s"] >= TARGET_MB_S if name.startswith("Resumable") else None
        flag = "" if meets is None else ("yes" if meets else "**NO**")
        lines.append(f"| {name} | {runs['best_mb_s']:.0f} ({runs['median_mb_s']:.0f}) | {flag} |")
    if state := data.get("state"):
        lines += [
            "",
            f"State ({state['state_bytes']} B pickle, {state['state_text_chars']} chars as "
            f"base64): export {state['export_state_us']} us, import {state['from_state_us']} "
            f"us; as text {state['export_state_text_us']} us / {state['from_state_text_us']} "
            "us.",
        ]
    if threads := data.get("threads"):
        ours, control = threads["ResumableSHA256"], threads["hashlib.sha256"]
        lines += [
            "",
            f"Two threads hashing at once: {ours['two_threads']['best_mb_s']:.0f} MB/s "
            f"together, x{ours['speedup']} of one thread (hashlib, which releases the GIL: "
            f"x{control['speedup']}; both are bounded by how busy the other CPUs are).",
        ]
    if streaming := data.get("streaming"):
        lines += [
            "",
            "StreamingDigester, 256 MiB per chunk size: MB/s and event-loop CPU per chunk "
            f"(us), hashed inline vs in the executor. Offload threshold: "
            f"{streaming['offload_threshold'] // bl.KiB} KiB.",
            "",
            "| Chunk | Inline MB/s | Inline loop us/chunk | Thread MB/s | Thread loop us/chunk |",
            "|---:|---:|---:|---:|---:|",
        ]
        for size, modes in streaming["chunks"].items():
            inline, thread = modes["inline"], modes["thread"]
            lines.append(
                f"| {int(size) // bl.KiB} KiB | {inline['best_mb_s']:.0f} "
                f"| {inline['loop_cpu_us_per_chunk']} | {thread['best_mb_s']:.0f} "
                f"| {thread['loop_cpu_us_per_chunk']} |"
            )
    return "\n".join(lines) + "\n"
