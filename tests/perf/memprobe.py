"""Peak memory of one storage driver writing, then reading, one large object.

Runs in a fresh process (`python memprobe.py '<json spec>'`) so that allocations made earlier
by the test process cannot hide growth. Prints one JSON object on stdout. The spec holds
`driver` and `params` (for `build_driver`), `key` and `size` (a multiple of 1 MiB).

glibc's allocator keeps its defaults here, unlike in the throughput bench and in Wharf's
services (`wharf.cli.allocator`): those settings let the heap keep up to 64 MiB of freed
memory for reuse, so RSS would show that policy rather than what the driver holds (RGW's
write measured 52-59 MiB of growth with them, against 64 MiB of budget).

Growth is the peak RSS during a phase minus the RSS measured before the write, after imports,
driver creation and a one-byte warm-up (which opens connections and executor threads). The
peak is the larger of a 10 ms RSS sampler and the kernel's VmHWM, reset before each phase.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

MiB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_INTERVAL = 0.01


def current_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def kernel_peak() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakSampler(threading.Thread):
    """Samples RSS every 10 ms until stopped, keeping the maximum."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = current_rss()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(SAMPLE_INTERVAL):
            self.peak = max(self.peak, current_rss())

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, current_rss())


async def repeat_block(block: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield block


async def drain(stream: AsyncIterator[bytes]) -> int:
    total = 0
    async for chunk in stream:
        total += len(chunk)
    return total


async def measure_phase(run: Callable[[], Awaitable[int]], baseline: int) -> dict[str, Any]:
    gc.collect()
    hwm_reset = reset_peak()
    before = current_rss()
    sampler = PeakSampler()
    sampler.start()
    started = time.perf_counter()
    count = await run()
    seconds = time.perf_counter() - started
    peak = sampler.stop()
    if hwm_reset:
        peak = max(peak, kernel_peak())
    return {
        "bytes": count,
        "seconds": round(seconds, 3),
        "rss_before_phase": before,
        "rss_peak": peak,
        "growth_bytes": peak - baseline,
        "growth_mib": round((peak - baseline) / MiB, 2),
        "growth_since_phase_start_mib": round((peak - before) / MiB, 2),
        "vmhwm_used": hwm_reset,
    }


async def probe(spec: dict[str, Any]) -> dict[str, Any]:
    from wharf.storage import build_driver

    driver = build_driver("bench", spec["driver"], spec["params"])
    key, size = spec["key"], int(spec["size"])
    block = os.urandom(MiB)
    warmup = f"{key}.warmup"
    try:
        await driver.put_content(warmup, b"x")
        await drain(driver.stream_read(warmup))
        await driver.remove(warmup)
        gc.collect()
        baseline = current_rss()
        write = await measure_phase(
            lambda: driver.stream_write(key, repeat_block(block, size // MiB)), baseline
        )
        read = await measure_phase(lambda: drain(driver.stream_read(key)), baseline)
        await driver.remove(key)
    finally:
        await driver.aclose()
    return {"object_bytes": size, "rss_baseline": baseline, "write": write, "read": read}


def main() -> None:
    spec = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(probe(spec))))


if __name__ == "__main__":
    main()
