"""The registry benchmark's results: bench-results/registry.json and its summary.md section."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.perf import benchlib as bl

SECTION_BEGIN = "<!-- registry-bench:begin -->"
SECTION_END = "<!-- registry-bench:end -->"

TARGETS = {"push": 2.0, "push_chunked": 2.0, "pull": 1.0, "manifest_get": 0.5}
"""Wharf / distribution throughput the registry issue asks for (higher is better)."""

CASE_NAMES = {
    "push": "push {size}, one PUT",
    "push_chunked": "push {size}, 16 MiB PATCHes",
    "pull": "pull {size}",
}
MEMORY_CASES = ("push", "push_chunked", "pull")


def write(data: dict[str, Any]) -> str:
    """Write registry.json and the registry section of summary.md; return the section."""
    data = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": bl.host_info(),
        "method": {
            "mb": "10^6 bytes",
            "runs": bl.RUNS,
            "headline": "best of the runs; the median is recorded too",
            "ratio": "Wharf throughput / distribution throughput (higher is better)",
            "targets": TARGETS,
            "blobs": "a new 1 GiB blob per push (1 MiB random block repeated, last MiB "
            "unique); untimed warm-up per server; servers' order alternates per round; "
            "os.sync() before every push and each blob's file deleted once measured, "
            "both untimed (new guest memory costs ~2.3 s/GiB of kernel time on this VM)",
            "client": "aiohttp, 1 MiB body chunks with Content-Length, keep-alive; the same "
            "code for both servers",
            "memory": "server peak RSS (10 ms sampler and VmHWM) during the 1 GiB cases minus "
            "its idle RSS after the warm-up; flat = growth under "
            f"{bl.MEMORY_BUDGET // bl.MiB} MiB",
            "manifest_get": "32 asyncio workers, one keep-alive connection each, GET by tag "
            "back to back for a fixed time; latency is per request, client side",
        },
        **data,
    }
    return bl.publish("registry", data, render_markdown(data), SECTION_BEGIN, SECTION_END)


def _size(nbytes: int) -> str:
    return f"{nbytes / bl.GiB:g} GiB" if nbytes >= bl.GiB else f"{nbytes // bl.MiB} MiB"


def _yes(flag: bool) -> str:
    return "yes" if flag else "**NO**"


def render_markdown(data: dict[str, Any]) -> str:
    host = data["host"]
    versions = data.get("servers", {})
    baseline = versions.get("distribution", {}).get("version", "CNCF distribution")
    lines = [
        "## Registry",
        "",
        f"Run {data['generated_at']} on {host['hostname']} ({host['cpus']} CPUs, Python "
        f"{host['python']}). Wharf (mirror mode, SQLite, local disk) against {baseline} "
        "(filesystem), both on loopback with data on the same disk, one aiohttp client. "
        f"MB/s is 10^6 bytes/s, best of {bl.RUNS} runs (median in brackets); ratio = Wharf / "
        f"distribution. Load average at the end: {host['load_average_1_5_15'][0]}.",
    ]
    if data["throughput"]:
        lines += [
            "",
            "| Case | Wharf MB/s | distribution MB/s | Ratio | Target | Meets | "
            "Server CPU s/GiB, of it kernel (Wharf / distribution) | Client CPU s/GiB |",
            "|---|---:|---:|---:|---:|:---:|---:|---:|",
        ]
    for case, record in data["throughput"].items():
        wharf, dist = record["servers"]["wharf"], record["servers"]["distribution"]
        lines.append(
            f"| {CASE_NAMES.get(case, case).format(size=_size(record['object_bytes']))} "
            f"| {wharf['best_mb_s']:.0f} ({wharf['median_mb_s']:.0f}) "
            f"| {dist['best_mb_s']:.0f} ({dist['median_mb_s']:.0f}) "
            f"| {record['ratio']:.2f} ({record['ratio_median']:.2f}) "
            f"| {record['target_ratio']} | {_yes(record['meets_target'])} "
            f"| {_cpu(wharf)} / {_cpu(dist)} "
            f"| {wharf['client_cpu_s_per_gib']} / {dist['client_cpu_s_per_gib']} |"
        )
    faults = [
        f"{CASE_NAMES.get(case, case).format(size=_size(record['object_bytes']))}: "
        f"{record['servers']['wharf'].get('server_page_faults_per_gib', '-')} / "
        f"{record['servers']['distribution'].get('server_page_faults_per_gib', '-')}"
        for case, record in data["throughput"].items()
    ]
    if faults:
        lines += ["", f"Server page faults per GiB (Wharf / distribution): {'; '.join(faults)}."]
    if manifest := data.get("manifest_get"):
        lines += _manifest_lines(manifest)
    if data["memory"]:
        lines += [
            "",
            "Server memory: idle RSS after the warm-up, and peak RSS growth over it in MiB "
            "during each blob case (in brackets: over the RSS when the case began).",
            "",
            "| Server | Idle RSS MiB | Push | Chunked push | Pull | Flat (< "
            f"{bl.MEMORY_BUDGET // bl.MiB} MiB) |",
            "|---|---:|---:|---:|---:|:---:|",
        ]
        for name, record in data["memory"].items():
            cells = [
                f"{record['cases'][case]['growth_mib']:.1f} "
                f"({record['cases'][case]['growth_since_case_start_mib']:.1f})"
                for case in MEMORY_CASES
            ]
            lines.append(
                f"| {name} | {record['idle_rss_mib']:.0f} | {' | '.join(cells)} "
                f"| {_yes(record['meets_target'])} |"
            )
    for name, reason in data["skipped"].items():
        lines.append(f"\nSkipped {name}: {reason}")
    for note in data["notes"]:
        lines.append(f"\nNote: {note}")
    return "\n".join(lines) + "\n"


def _manifest_lines(record: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"Manifest GET by tag, {record['workers']} concurrent clients, "
        f"{record['seconds_per_run']:.0f} s per run: requests/s best (median), latency of "
        "the best run.",
        "",
        "| Server | req/s | p50 ms | p99 ms | Server CPU ms/request | Client CPU share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, server in record["servers"].items():
        best = server["best"]
        lines.append(
            f"| {name} | {best['requests_per_s']:.0f} ({server['median_requests_per_s']:.0f}) "
            f"| {best['p50_ms']:.1f} | {best['p99_ms']:.1f} "
            f"| {best['server_cpu_ms_per_request']:.2f} | {best['client_cpu_share']:.2f} |"
        )
    if "ratio" in record:
        lines += [
            "",
            f"Ratio Wharf / distribution: {record['ratio']:.2f} "
            f"({record['ratio_median']:.2f}), target {record['target_ratio']}: "
            f"{_yes(record['meets_target'])}.",
        ]
    return lines


def _cpu(server: dict[str, Any]) -> str:
    kernel = server.get("server_system_cpu_s_per_gib")
    total = server["server_cpu_s_per_gib"]
    return f"{total}" if kernel is None else f"{total} ({kernel})"
