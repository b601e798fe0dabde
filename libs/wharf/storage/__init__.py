"""Wharf's storage library: one async driver protocol, Quay's key layout and configuration.

The public surface is re-exported here; everything else is an implementation detail.
"""

from wharf.storage.config import LocationConfig, StorageConfig, load_storage_config
from wharf.storage.distributed import DistributedStorage
from wharf.storage.errors import (
    BackendError,
    BackendUnavailable,
    InvalidPath,
    InvalidUpload,
    ObjectNotFound,
    ReadOnlyStorage,
    StorageConfigError,
    StorageError,
)
from wharf.storage.keys import (
    Digest,
    InvalidDigest,
    blob_path,
    check_key,
    content_path,
    parse_digest,
    upload_path,
    v1_image_layer_path,
)
from wharf.storage.protocol import ChunkResult, DownloadContext, ObjectInfo, StorageDriver
from wharf.storage.registry import DRIVERS, build_driver

__all__ = [
    "DRIVERS",
    "BackendError",
    "BackendUnavailable",
    "ChunkResult",
    "Digest",
    "DistributedStorage",
    "DownloadContext",
    "InvalidDigest",
    "InvalidPath",
    "InvalidUpload",
    "LocationConfig",
    "ObjectInfo",
    "ObjectNotFound",
    "ReadOnlyStorage",
    "StorageConfig",
    "StorageConfigError",
    "StorageDriver",
    "StorageError",
    "blob_path",
    "build_driver",
    "check_key",
    "content_path",
    "load_storage_config",
    "parse_digest",
    "upload_path",
    "v1_image_layer_path",
]
