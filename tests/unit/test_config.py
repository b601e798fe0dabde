"""Quay's storage configuration: every driver name known, every mistake a precise error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wharf.storage import DRIVERS, StorageConfigError, build_driver, load_storage_config

QUAY_DRIVER_NAMES = {
    "LocalStorage",
    "S3Storage",
    "GoogleCloudStorage",
    "RadosGWStorage",
    "SwiftStorage",
    "CloudFrontedS3Storage",
    "AzureStorage",
    "RHOCSStorage",
    "CloudFlareStorage",
    "MultiCDNStorage",
    "IBMCloudStorage",
    "STSS3Storage",
    "AkamaiS3Storage",
}
IMPLEMENTED = {
    "LocalStorage",
    "S3Storage",
    "STSS3Storage",
    "RadosGWStorage",
    "RHOCSStorage",
    "IBMCloudStorage",
}
MINIMAL_PARAMS: dict[str, dict[str, Any]] = {
    "LocalStorage": {"storage_path": "/tmp/x"},
    "S3Storage": {"storage_path": "/r", "s3_bucket": "b"},
    "STSS3Storage": {"storage_path": "/r", "s3_bucket": "b"},
    "RadosGWStorage": {
        "hostname": "h",
        "is_secure": False,
        "storage_path": "/r",
        "access_key": "a",
        "secret_key": "s",
        "bucket_name": "b",
    },
    "IBMCloudStorage": {
        "hostname": "h",
        "is_secure": True,
        "storage_path": "/r",
        "access_key": "a",
        "secret_key": "s",
        "bucket_name": "b",
    },
    "GoogleCloudStorage": {
        "storage_path": "/r",
        "access_key": "a",
        "secret_key": "s",
        "bucket_name": "b",
    },
    "SwiftStorage": {
        "swift_container": "c",
        "storage_path": "/r",
        "auth_url": "http://x",
        "swift_user": "u",
        "swift_password": "p",
    },
    "AzureStorage": {"azure_container": "c", "storage_path": "/r", "azure_account_name": "a"},
    "CloudFrontedS3Storage": {
        "cloudfront_distribution_domain": "d",
        "cloudfront_key_id": "k",
        "cloudfront_privatekey_filename": "f",
        "storage_path": "/r",
        "s3_bucket": "b",
        "s3_region": "us-east-1",
    },
    "CloudFlareStorage": {
        "cloudflare_domain": "d",
        "cloudflare_privatekey_filename": "f",
        "storage_path": "/r",
        "s3_bucket": "b",
        "s3_region": "us-east-1",
    },
    "AkamaiS3Storage": {
        "akamai_domain": "d",
        "akamai_shared_secret": "00",
        "storage_path": "/r",
        "s3_bucket": "b",
        "s3_region": "us-east-1",
    },
    "MultiCDNStorage": {
        "storage_config": {"s3_bucket": "b"},
        "providers": {"A": ["AkamaiS3Storage", {}]},
        "default_provider": "A",
        "rules": [],
    },
}
MINIMAL_PARAMS["RHOCSStorage"] = MINIMAL_PARAMS["RadosGWStorage"]


def config(driver: str, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"DISTRIBUTED_STORAGE_CONFIG": {"loc": [driver, params]}, **extra}


def test_all_thirteen_quay_driver_names_are_known() -> None:
    assert set(DRIVERS) == QUAY_DRIVER_NAMES
    assert set(MINIMAL_PARAMS) == QUAY_DRIVER_NAMES


@pytest.mark.parametrize("driver", sorted(QUAY_DRIVER_NAMES))
def test_minimal_parameters_validate(driver: str) -> None:
    loaded = load_storage_config(config(driver, MINIMAL_PARAMS[driver]))
    assert loaded.locations["loc"].driver == driver


@pytest.mark.parametrize("driver", sorted(QUAY_DRIVER_NAMES - IMPLEMENTED))
def test_later_drivers_fail_at_startup_saying_so(driver: str) -> None:
    with pytest.raises(
        StorageConfigError,
        match="not implemented in this release of Wharf; a later release adds it",
    ) as info:
        build_driver("loc", driver, MINIMAL_PARAMS[driver])
    assert info.value.location == "loc"
    assert info.value.driver == driver


@pytest.mark.parametrize("driver", sorted(IMPLEMENTED))
def test_implemented_drivers_build(driver: str) -> None:
    built = build_driver("loc", driver, MINIMAL_PARAMS[driver])
    assert built.driver_name == driver
    assert built.location == "loc"


def test_unknown_driver_names_the_location() -> None:
    with pytest.raises(StorageConfigError) as info:
        load_storage_config(config("FakeStorage", {}))
    assert "unknown storage driver 'FakeStorage'" in str(info.value)
    assert info.value.location == "loc"


def test_unknown_parameter_names_location_driver_and_parameter() -> None:
    params = {**MINIMAL_PARAMS["S3Storage"], "s3_buckett": "typo"}
    with pytest.raises(StorageConfigError) as info:
        load_storage_config(config("S3Storage", params))
    error = info.value
    assert (error.location, error.driver, error.parameter) == ("loc", "S3Storage", "s3_buckett")
    assert "unknown parameter 's3_buckett'" in str(error)


def test_missing_parameter_is_named() -> None:
    with pytest.raises(StorageConfigError) as info:
        load_storage_config(config("S3Storage", {"storage_path": "/r"}))
    assert info.value.parameter == "s3_bucket"
    assert "missing required parameter" in str(info.value)


def test_badly_typed_parameter_is_named() -> None:
    params = {**MINIMAL_PARAMS["RadosGWStorage"], "port": "eighty"}
    with pytest.raises(StorageConfigError) as info:
        load_storage_config(config("RadosGWStorage", params))
    assert info.value.parameter == "port"


def test_sts_driver_refuses_parameters_quays_does_not_accept() -> None:
    params = {**MINIMAL_PARAMS["STSS3Storage"], "s3_access_key": "a"}
    with pytest.raises(StorageConfigError, match="s3_access_key"):
        load_storage_config(config("STSS3Storage", params))


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"DISTRIBUTED_STORAGE_CONFIG": {}},
        {"DISTRIBUTED_STORAGE_CONFIG": []},
        {"DISTRIBUTED_STORAGE_CONFIG": {"loc": ["LocalStorage"]}},
        {"DISTRIBUTED_STORAGE_CONFIG": {"loc": "LocalStorage"}},
        {"DISTRIBUTED_STORAGE_CONFIG": {"loc": [1, {}]}},
    ],
)
def test_malformed_top_level(bad: dict[str, Any]) -> None:
    with pytest.raises(StorageConfigError):
        load_storage_config(bad)


def test_preference_defaults_and_unknown_locations() -> None:
    two = {
        "DISTRIBUTED_STORAGE_CONFIG": {
            "a": ["LocalStorage", {"storage_path": "/a"}],
            "b": ["LocalStorage", {"storage_path": "/b"}],
        }
    }
    assert load_storage_config(two).preference == ["a", "b"]
    assert load_storage_config({**two, "DISTRIBUTED_STORAGE_PREFERENCE": ["b"]}).preference == ["b"]
    with pytest.raises(StorageConfigError, match="'c'"):
        load_storage_config({**two, "DISTRIBUTED_STORAGE_PREFERENCE": ["c"]})
    with pytest.raises(StorageConfigError, match="DEFAULT_LOCATIONS"):
        load_storage_config({**two, "DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS": ["z"]})
    readonly = load_storage_config({**two, "REGISTRY_STATE": "readonly"})
    assert readonly.readonly
    with pytest.raises(StorageConfigError, match="REGISTRY_STATE"):
        load_storage_config({**two, "REGISTRY_STATE": "sleepy"})


def test_credentials_from_environment_and_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    monkeypatch.setenv("WHARF_TEST_KEY", "from-env")
    params = {
        **MINIMAL_PARAMS["S3Storage"],
        "s3_access_key": {"env": "WHARF_TEST_KEY"},
        "s3_secret_key": {"file": str(secret_file)},
    }
    loaded = load_storage_config(config("S3Storage", params))
    resolved = loaded.locations["loc"].params
    assert resolved["s3_access_key"] == "from-env"
    assert resolved["s3_secret_key"] == "from-file"


def test_missing_credential_sources_are_named(tmp_path: Path) -> None:
    params = {**MINIMAL_PARAMS["S3Storage"], "s3_secret_key": {"env": "WHARF_SURELY_UNSET"}}
    with pytest.raises(StorageConfigError, match="WHARF_SURELY_UNSET") as info:
        load_storage_config(config("S3Storage", params))
    assert info.value.parameter == "s3_secret_key"
    params = {**MINIMAL_PARAMS["S3Storage"], "s3_secret_key": {"file": str(tmp_path / "nope")}}
    with pytest.raises(StorageConfigError, match="cannot read"):
        load_storage_config(config("S3Storage", params))


def test_secrets_never_appear_in_error_messages() -> None:
    params = {**MINIMAL_PARAMS["S3Storage"], "s3_secret_key": "hunter2", "oops": 1}
    with pytest.raises(StorageConfigError) as info:
        load_storage_config(config("S3Storage", params))
    assert "hunter2" not in str(info.value)
