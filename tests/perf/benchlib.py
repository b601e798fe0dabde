"""Shared pieces of the storage benchmarks: data sources, timing, baselines, result files.

Benchmarks measure; they never fail on speed. Throughput is reported in MB/s (10^6 bytes per
second); a ratio is library throughput divided by baseline throughput, so above 1 is faster.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from wharf.storage.drivers.writeback import start_writeback

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
MB = 1_000_000

RUNS = int(os.environ.get("WHARF_BENCH_RUNS", "3"))
"""Timed runs per measurement; more steadies the numbers on a noisy machine."""
RATIO_TARGET = 0.9
MEMORY_BUDGET = 64 * MiB

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "bench-results"
SUMMARY_BEGIN = "<!-- storage-bench:begin -->"
SUMMARY_END = "<!-- storage-bench:end -->"


# -- data ------------------------------------------------------------------------------------


async def repeat_block(block: bytes, count: int) -> AsyncIterator[bytes]:
    """The same pre-generated block `count` times, so generating data costs nothing."""
    for _ in range(count):
        yield block


async def drain(stream: AsyncIterable[bytes]) -> int:
    """Consume a stream, counting its bytes without keeping them."""
    total = 0
    async for chunk in stream:
        total += len(chunk)
    return total


# -- timing ----------------------------------------------------------------------------------


@dataclass
class Runs:
    """Wall-clock seconds of repeated runs that each move `nbytes`."""

    nbytes: int
    seconds: list[float] = field(default_factory=list)

    def mbps(self) -> list[float]:
        return [self.nbytes / s / MB for s in self.seconds]

    def best(self) -> float:
        return max(self.mbps())

    def median(self) -> float:
        return statistics.median(self.mbps())

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs_seconds": [round(s, 4) for s in self.seconds],
            "runs_mb_s": [round(v, 1) for v in self.mbps()],
            "best_mb_s": round(self.best(), 1),
            "median_mb_s": round(self.median(), 1),
        }


class Stopwatch:
    """`with watch: ...` adds the block's duration to `runs`."""

    def __init__(self, runs: Runs) -> None:
        self.runs = runs
        self._started = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runs.seconds.append(time.perf_counter() - self._started)


def throughput_case(
    library: Runs, baselines: dict[str, Runs], primary: str, notes: dict[str, str]
) -> dict[str, Any]:
    """One case's record: every run, and the ratio against each baseline (best and median)."""
    ratios = {
        name: {
            "best": round(library.best() / runs.best(), 3),
            "median": round(library.median() / runs.median(), 3),
        }
        for name, runs in baselines.items()
    }
    return {
        "object_bytes": library.nbytes,
        "library": library.as_dict(),
        "baselines": {
            name: {**runs.as_dict(), "what": notes.get(name, "")}
            for name, runs in baselines.items()
        },
        "primary_baseline": primary,
        "ratio": ratios[primary]["best"],
        "ratio_median": ratios[primary]["median"],
        "ratios": ratios,
        "target_ratio": RATIO_TARGET,
        "meets_target": ratios[primary]["best"] >= RATIO_TARGET,
    }


# -- local-disk baselines (plain synchronous file I/O) ---------------------------------------


def raw_file_write(
    path: Path, block: bytes, count: int, *, writeback: bool = False
) -> tuple[float, float]:
    """Write `count` blocks with open/write; returns (seconds writing, seconds in fsync).

    The fsync is timed apart because the library fsyncs before its rename: the fair baseline
    includes it, the no-fsync figure is kept for reference. `writeback`: start the writeback
    of each block as it is written (sync_file_range), the technique the library uses.
    """
    started = time.perf_counter()
    with open(path, "wb") as handle:
        for index in range(count):
            handle.write(block)
            if writeback:
                handle.flush()
                start_writeback(handle.fileno(), index * len(block), len(block))
        written = time.perf_counter()
        os.fsync(handle.fileno())
    return written - started, time.perf_counter() - written


def raw_file_read(path: Path) -> tuple[int, float]:
    """Read a file with `readinto` into one reused 1 MiB buffer; returns (bytes, seconds)."""
    buffer = memoryview(bytearray(MiB))
    total = 0
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            total += count
    return total, time.perf_counter() - started


def raw_file_read_bytes(path: Path) -> tuple[int, float]:
    """Read a file with `read(1 MiB)`, a new bytes object per chunk as the library yields."""
    total = 0
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(MiB):
            total += len(chunk)
    return total, time.perf_counter() - started


def cat_file(path: Path) -> float:
    """`cat` one file to /dev/null; returns seconds (the read counterpart of `cp_file`)."""
    started = time.perf_counter()
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def settle_disk() -> None:
    """Flush all dirty pages (untimed) so one run's writeback does not slow the next run."""
    os.sync()


def cp_file(source: Path, target: Path) -> tuple[float, float]:
    """`cp` one file; returns (seconds in cp, seconds to fsync the copy afterwards)."""
    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(target)], check=True)
    copied = time.perf_counter()
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return copied - started, time.perf_counter() - copied


def remove_quietly(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


# -- RGW baselines (bare aiobotocore) --------------------------------------------------------


@dataclass(frozen=True)
class S3Target:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str


def bare_client_config() -> AioConfig:
    # The library's own client options (path-style, checksums only when required, 32
    # connections): otherwise the baseline would pay for CRC32 checksums the library skips.
    return AioConfig(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=32,
        retries={"mode": "standard", "max_attempts": 3},
    )


@asynccontextmanager
async def bare_s3_client(target: S3Target) -> AsyncIterator[S3Client]:
    async with get_session().create_client(
        "s3",
        endpoint_url=target.endpoint,
        region_name="us-east-1",
        aws_access_key_id=target.access_key,
        aws_secret_access_key=target.secret_key,
        config=bare_client_config(),
    ) as client:
        yield client


async def bare_multipart_upload(
    client: S3Client, bucket: str, key: str, chunks: AsyncIterable[bytes], part_size: int
) -> int:
    """create_multipart_upload, then upload_part one after another, then complete."""
    upload_id = (await client.create_multipart_upload(Bucket=bucket, Key=key))["UploadId"]
    parts: list[dict[str, Any]] = []
    pending: list[bytes] = []
    pending_size = total = 0

    async def send() -> None:
        number = len(parts) + 1
        response = await client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=b"".join(pending)
        )
        parts.append({"PartNumber": number, "ETag": response["ETag"]})

    async for chunk in chunks:
        pending.append(chunk)
        pending_size += len(chunk)
        total += len(chunk)
        if pending_size >= part_size:
            await send()
            pending.clear()
            pending_size = 0
    if pending:
        await send()
    await client.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
    )
    return total


async def bare_get_object(client: S3Client, bucket: str, key: str) -> int:
    """get_object, reading the body 1 MiB at a time and counting bytes."""
    response = await client.get_object(Bucket=bucket, Key=key)
    total = 0
    async with response["Body"] as body:
        while chunk := await body.read(MiB):
            total += len(chunk)
    return total


def empty_bucket(client: Any, bucket: str) -> None:
    """Delete every object and abort every upload (`client` is a sync botocore client)."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=entry["Key"])
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def ceph_conf() -> str | None:
    """The running radosgw's config file: from the environment, else its command line."""
    explicit = os.environ.get("WHARF_BENCH_CEPH_CONF")
    if explicit:
        return explicit
    for process in psutil.process_iter(["name", "cmdline"]):
        args = process.info.get("cmdline") or []
        if process.info.get("name") == "radosgw" and "-c" in args[:-1]:
            return str(args[args.index("-c") + 1])
    fallback = REPO_ROOT / ".ci-stores" / "ceph" / "ceph.conf"
    return str(fallback) if fallback.is_file() else None


def rgw_garbage_collect() -> bool:
    """Run RGW's garbage collector now; whether it ran.

    RGW frees the data of deleted multipart objects only after `rgw_gc_obj_min_wait` (two
    hours by default), and the loopback RGW keeps its data in RAM (memstore): without this,
    gigabytes of deleted benchmark objects would fill it up.
    """
    admin = shutil.which("radosgw-admin")
    conf = ceph_conf()
    if admin is None or conf is None:
        return False
    try:
        done = subprocess.run(
            [admin, "-c", conf, "gc", "process", "--include-all"],
            capture_output=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


# -- results ---------------------------------------------------------------------------------


@contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    """A directory on the real disk under bench-results/tmp, removed afterwards."""
    path = RESULTS_DIR / "tmp" / name
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def host_info() -> dict[str, Any]:
    """The machine a result came from; load is the main source of noise, so it is recorded."""
    return {
        "hostname": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


@dataclass
class Report:
    """Everything one benchmark session measured; written out once at the end."""

    throughput: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": host_info(),
            "method": {
                "mb": "10^6 bytes",
                "runs": RUNS,
                "warmup": "one untimed round first; library and baseline interleaved",
                "headline": "best of the runs (highest throughput); the median is recorded too",
                "ratio": "library throughput / baseline throughput",
                "target_ratio": RATIO_TARGET,
                "memory_budget_bytes": MEMORY_BUDGET,
                "memory": "peak RSS (10 ms sampler and VmHWM) minus RSS before the write, "
                "in a fresh subprocess per case; growth_since_phase_start excludes what an "
                "earlier phase left behind",
            },
            "throughput": self.throughput,
            "memory": self.memory,
            "skipped": self.skipped,
            "notes": self.notes,
        }

    def write(self) -> str:
        """Write storage.json and the storage section of summary.md; return the table."""
        data = self.as_dict()
        return publish("storage", data, render_markdown(data))


def _yes(flag: bool) -> str:
    return "yes" if flag else "**NO**"


def render_markdown(data: dict[str, Any]) -> str:
    host = data["host"]
    lines = [
        "## Storage",
        "",
        f"Run {data['generated_at']} on {host['hostname']} ({host['cpus']} CPUs, Python "
        f"{host['python']}). MB/s is 10^6 bytes/s, best of {RUNS} runs (median in brackets); "
        f"ratio = library / baseline, target >= {RATIO_TARGET}. Load average at the end: "
        f"{host['load_average_1_5_15'][0]}.",
    ]
    if data["throughput"]:
        lines += [
            "",
            "| Case | Library MB/s | Baseline | Baseline MB/s | Ratio | Meets 0.9 |",
            "|---|---:|---|---:|---:|:---:|",
        ]
    for name, case in data["throughput"].items():
        lib = case["library"]
        lib_cell = f"{lib['best_mb_s']:.0f} ({lib['median_mb_s']:.0f})"
        for i, (base_name, base) in enumerate(case["baselines"].items()):
            ratio = case["ratios"][base_name]
            primary = base_name == case["primary_baseline"]
            what = base["what"] if primary else f"{base['what']} (reference)"
            lines.append(
                f"| {name if i == 0 else ''} | {lib_cell if i == 0 else ''} | {what} "
                f"| {base['best_mb_s']:.0f} ({base['median_mb_s']:.0f}) "
                f"| {ratio['best']:.2f} ({ratio['median']:.2f}) "
                f"| {_yes(case['meets_target']) if primary else ''} |"
            )
    if data["memory"]:
        lines += [
            "",
            "Memory: peak RSS minus RSS before the write, in MiB; for the read, in brackets, "
            "minus RSS when the read began (the write's leftovers excluded).",
            "",
            "| Memory case | Object | Write growth MiB | Read growth MiB | Under 64 MiB |",
            "|---|---:|---:|---:|:---:|",
        ]
        for name, case in data["memory"].items():
            lines.append(
                f"| {name} | {case['object_bytes'] / GiB:.0f} GiB "
                f"| {case['write']['growth_mib']:.1f} | {case['read']['growth_mib']:.1f} "
                f"({case['read']['growth_since_phase_start_mib']:.1f}) "
                f"| {_yes(case['meets_target'])} |"
            )
    for name, reason in data["skipped"].items():
        lines.append(f"\nSkipped {name}: {reason}")
    for note in data["notes"]:
        lines.append(f"\nNote: {note}")
    return "\n".join(lines) + "\n"


def publish(
    name: str, data: dict[str, Any], table: str, begin: str = SUMMARY_BEGIN, end: str = SUMMARY_END
) -> str:
    """Write `<name>.json` and this benchmark's section of summary.md; return the section."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    update_summary(RESULTS_DIR / "summary.md", table, begin, end)
    return table


def update_summary(
    path: Path, table: str, begin: str = SUMMARY_BEGIN, end: str = SUMMARY_END
) -> None:
    """Replace one benchmark's section of summary.md (other benchmarks own the rest of it)."""
    section = f"{begin}\n{table}{end}\n"
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + section + tail.lstrip("\n")
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + section
    path.write_text(text)
