"""A test that needs a server skips when it is missing, except under CI=true, where it fails:
CI must never pass by skipping what it was meant to test."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import servers

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "required"),
    [("true", True), ("1", True), ("YES", True), ("", False), ("false", False), (None, False)],
)
def test_ci_values(monkeypatch: pytest.MonkeyPatch, value: str | None, required: bool) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert servers.running_in_ci() is required


@pytest.mark.parametrize(("ci", "outcome"), [("true", "failed"), ("", "skipped")])
def test_a_missing_server_fails_under_ci_and_skips_otherwise(
    tmp_path: Path, ci: str, outcome: str
) -> None:
    """Run by a real pytest, so that the outcome is what CI would see."""
    test_file = tmp_path / "test_needs_a_server.py"
    test_file.write_text(
        textwrap.dedent(
            """
            from tests.servers import unavailable

            def test_needs_a_server():
                unavailable("the frobnicator at 127.0.0.1:1")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=REPO,
        env={**{name: value for name, value in os.environ.items() if name != "CI"}, "CI": ci},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert f"1 {outcome}" in done.stdout, done.stdout + done.stderr
    if outcome == "failed":
        assert "the frobnicator at 127.0.0.1:1 is not available, and CI=true requires it" in (
            done.stdout
        )
