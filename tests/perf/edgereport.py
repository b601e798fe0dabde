"""The edge benchmark's results: bench-results/edge.json and the edge section of summary.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.perf import benchlib as bl

SECTION_BEGIN = "<!-- edge-bench:begin -->"
SECTION_END = "<!-- edge-bench:end -->"

ADDED_P50_TARGET_MS = 0.5
"""The issue's bar: the edge adds at most this much to a small request's median latency."""
RATIO_TARGET = 0.8
"""The issue's bar: blob throughput through the edge is at least this share of direct."""

LABELS = {
    "direct": "direct: `wharf serve --service registry`",
    "edge": "edge: `wharf edge serve` in front of it",
    "edge-uvloop": "edge under uvloop (diagnostic)",
    "nginx": "nginx in front of it",
    "relay": "bare splice relay in front of it (zero-copy, no HTTP: the ceiling)",
    "all": "`wharf serve --service all` (edge in process)",
}


def write(data: dict[str, Any]) -> str:
    """Write edge.json and the edge section of summary.md; return the section."""
    data = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": bl.host_info(),
        "method": {
            "ms": "milliseconds, client side, per request",
            "mb": "10^6 bytes",
            "runs": bl.RUNS,
            "headline": "best of the runs (lowest latency, highest throughput); the median "
            "of the runs is recorded too",
            "added": "a target's best p50 (p99) minus direct's best p50 (p99)",
            "ratio": "throughput through a target / direct throughput (higher is better)",
            "targets": {
                "edge_added_p50_ms": ADDED_P50_TARGET_MS,
                "edge_over_direct_blob_ratio": RATIO_TARGET,
            },
            "upstream": "Wharf's registry (`wharf serve --service registry --mode mirror`, "
            "SQLite, local disk) on loopback; one bearer token fetched up front and sent on "
            "every request, through every target",
            "head": "sequential HEADs of a manifest by tag on one keep-alive connection "
            "(http.client); the first requests of each run are untimed; an untimed run per target "
            "first; targets interleaved, their order reversed every round",
            "blob": "a new 1 GiB blob per push (POST, then one streamed PUT ?digest= with "
            "Content-Length, aiohttp, 1 MiB chunks), then GETs of it (pulls_per_push); "
            "untimed warm-up per "
            "target; os.sync() before every push and the blob's file deleted once pulled, both "
            "untimed (see test_registry_bench.discard)",
            "cpu": "CPU seconds of the proxy process (nginx: its worker) and of the registry "
            "process behind it, over the timed part only; the median of the runs",
            "all": "`wharf serve --service all` compared with direct is the in-process edge's "
            "cost: the same registry code, served alone or behind the edge in one process",
            "load": "machine.*: CPUs busy during a part, with this bench (client and servers) "
            "and with other work, and stolen by the hypervisor",
            "machine": "every process shares the same 2 vCPUs: client, proxy and registry "
            "compete for them, so a proxy's own CPU use shows up in the latency it adds",
        },
        **data,
    }
    return bl.publish("edge", data, render_markdown(data), SECTION_BEGIN, SECTION_END)


def _yes(flag: bool) -> str:
    return "yes" if flag else "**NO**"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_markdown(data: dict[str, Any]) -> str:
    host = data["host"]
    servers = data.get("servers", {})
    nginx = servers.get("nginx", {}).get("version", "nginx")
    lines = [
        "## Edge",
        "",
        f"Run {data['generated_at']} on {host['hostname']} ({host['cpus']} CPUs, Python "
        f"{host['python']}). Upstream: Wharf's registry (`wharf serve --service registry`, "
        "mirror mode) on loopback. The edge is `wharf edge serve` (its own process, SQLite "
        "switch store, the registry as its only upstream, access log to a file); nginx is "
        f"Debian's {nginx} (one worker, streaming both ways, keep-alive upstream). Best of "
        f"{bl.RUNS} interleaved runs (median in brackets). Load average at the end: "
        f"{host['load_average_1_5_15'][0]}.",
    ]
    if head := data.get("head"):
        lines += _head_lines(head)
    if blob := data.get("blob"):
        lines += _blob_lines(blob)
    if machine := data.get("machine"):
        parts = [
            f"{part}: {m['cpus_busy']:.2f} CPUs busy, {m['cpus_busy_with_this_bench']:.2f} of "
            f"them this bench, {m['cpus_busy_with_other_work']:.2f} other work, "
            f"{m['cpus_stolen']:.2f} stolen"
            for part, m in machine.items()
        ]
        lines += ["", f"Machine during the runs ({host['cpus']} CPUs): {'; '.join(parts)}."]
    for name, reason in data.get("skipped", {}).items():
        lines.append(f"\nSkipped {name}: {reason}")
    for note in data.get("notes", []):
        lines.append(f"\nNote: {note}")
    return "\n".join(lines) + "\n"


def _head_lines(head: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"Manifest HEAD by tag, {head['requests']} sequential requests per run on one "
        "keep-alive connection: latency in ms; added = target - direct; CPU ms per request "
        f"of the proxy / the registry. Target: the edge adds <= {ADDED_P50_TARGET_MS} ms at "
        "p50.",
        "",
        "| Target | p50 ms | p99 ms | Added p50 | Added p99 "
        "| CPU ms/req proxy / registry | Meets |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for name, row in head["targets"].items():
        meets = _yes(head["meets_target"]) if name == "edge" else ""
        lines.append(
            f"| {LABELS.get(name, name)} "
            f"| {row['best_p50_ms']:.3f} ({row['median_p50_ms']:.3f}) "
            f"| {row['best_p99_ms']:.3f} ({row['median_p99_ms']:.3f}) "
            f"| {_num(row.get('added_p50_ms'))} | {_num(row.get('added_p99_ms'))} "
            f"| {_num(row['proxy_cpu_ms_per_request'])} / "
            f"{_num(row['registry_cpu_ms_per_request'])} | {meets} |"
        )
    return lines


def _blob_lines(blob: dict[str, Any]) -> list[str]:
    size = blob["object_bytes"]
    size_text = f"{size / bl.GiB:g} GiB" if size >= bl.GiB else f"{size // bl.MiB} MiB"
    lines = [
        "",
        f"Blob {size_text}: push (POST + one streamed PUT) and pull (GET; best of "
        f"{blob['pulls_per_push'] * bl.RUNS} pulls, {blob['pulls_per_push']} per push), MB/s; "
        "ratio = "
        "target / direct; CPU s/GiB of the proxy / the registry. Target: edge / direct >= "
        f"{RATIO_TARGET}.",
        "",
        "| Target | Push MB/s | Push ratio | Pull MB/s | Pull ratio | CPU s/GiB push "
        "| CPU s/GiB pull | Meets |",
        "|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    push, pull = blob["cases"]["push"], blob["cases"]["pull"]
    for name in push["targets"]:
        cells = []
        for case in (push, pull):
            row = case["targets"][name]
            ratio = case["ratios"].get(f"{name}/direct")
            ratio_text = f"{ratio['best']:.2f} ({ratio['median']:.2f})" if ratio else "-"
            cells.append(f"{row['best_mb_s']:.0f} ({row['median_mb_s']:.0f}) | {ratio_text}")
        cpu = [
            f"{_num(case['targets'][name]['proxy_cpu_s_per_gib'], 2)} / "
            f"{_num(case['targets'][name]['registry_cpu_s_per_gib'], 2)}"
            for case in (push, pull)
        ]
        meets = (
            f"push {_yes(push['meets_target'])}, pull {_yes(pull['meets_target'])}"
            if name == "edge"
            else ""
        )
        lines.append(
            f"| {LABELS.get(name, name)} | {cells[0]} | {cells[1]} | {cpu[0]} | {cpu[1]} "
            f"| {meets} |"
        )
    for reference in ("nginx", "relay"):
        key = f"edge/{reference}"
        against = [
            f"{case_name} {case['ratios'][key]['best']:.2f} ({case['ratios'][key]['median']:.2f})"
            for case_name, case in blob["cases"].items()
            if key in case["ratios"]
        ]
        if against:
            lines += ["", f"Edge / {reference} throughput: {', '.join(against)}."]
    for case_name, case in blob["cases"].items():
        totals = ", ".join(f"{name} {_total_cpu(row):.2f}" for name, row in case["targets"].items())
        lines += [
            "",
            f"CPU seconds per {case_name}ed GiB, client + proxy + registry: {totals} (on "
            f"{bl.host_info()['cpus']} CPUs a GiB takes at least a half of that in wall time).",
        ]
    memory = blob.get("front_peak_growth_mib", {})
    if memory:
        text = ", ".join(f"{name} {mib:.1f} MiB" for name, mib in memory.items())
        lines += ["", f"Peak RSS growth of the process the client talks to, over a case: {text}."]
    return lines


def _total_cpu(row: dict[str, Any]) -> float:
    parts = ("client_cpu_s_per_gib", "proxy_cpu_s_per_gib", "registry_cpu_s_per_gib")
    return sum(row[part] or 0.0 for part in parts)
