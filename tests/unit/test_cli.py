from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wharf.cli.main import main


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "serve" in capsys.readouterr().out


def test_storage_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["storage", "path", "tarsum.v1+sha256:123123"]) == 0
    assert capsys.readouterr().out.strip() == "tarsum/v1/sha256/12/123123"
    assert main(["storage", "path", "nope"]) == 2


def test_storage_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "config.yaml"
    good.write_text(
        yaml.safe_dump(
            {
                "DISTRIBUTED_STORAGE_CONFIG": {
                    "local_us": ["LocalStorage", {"storage_path": str(tmp_path / "s")}]
                }
            }
        )
    )
    assert main(["storage", "validate", "--config", str(good)]) == 0
    assert "local_us: ok" in capsys.readouterr().out
    assert (tmp_path / "s" / "_verify").read_bytes() == b"testing 123"


def test_storage_validate_reports_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text(
        yaml.safe_dump({"DISTRIBUTED_STORAGE_CONFIG": {"us": ["S3Storage", {"s3_bucket": "b"}]}})
    )
    assert main(["storage", "validate", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "missing required parameter 'storage_path'" in err
    assert "location=us" in err
    assert "driver=S3Storage" in err
    (tmp_path / "broken.yaml").write_text("a: [")
    assert main(["storage", "validate", "--config", str(tmp_path / "broken.yaml")]) == 2
    assert main(["storage", "validate", "--config", str(tmp_path / "absent.yaml")]) == 2
