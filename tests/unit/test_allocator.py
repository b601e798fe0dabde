"""tune_allocator: glibc's thresholds for a blob server, unless the operator chose their own."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from wharf.cli.allocator import (
    M_MMAP_THRESHOLD,
    M_TRIM_THRESHOLD,
    MMAP_THRESHOLD,
    TRIM_THRESHOLD,
    tune_allocator,
)


class Recorder:
    def __init__(self, answer: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def __call__(self, option: int, value: int) -> int:
        self.calls.append((option, value))
        return self.answer


def test_both_thresholds_are_set() -> None:
    mallopt = Recorder()
    assert tune_allocator({}, mallopt)
    assert sorted(mallopt.calls) == sorted(
        [(M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_MMAP_THRESHOLD, MMAP_THRESHOLD)]
    )


@pytest.mark.parametrize("variable", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"])
def test_the_operators_own_setting_wins(variable: str) -> None:
    mallopt = Recorder()
    assert not tune_allocator({variable: "131072"}, mallopt)
    assert mallopt.calls == []


def test_a_refused_setting_is_reported() -> None:
    assert not tune_allocator({}, Recorder(answer=0))


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_glibc_takes_the_settings() -> None:
    code = "import os; from wharf.cli.allocator import tune_allocator; print(tune_allocator({}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
