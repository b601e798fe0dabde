"""Prometheus metrics shared by every driver (recorded once, in the driver base)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

OPERATIONS = Counter(
    "wharf_storage_operations_total",
    "Storage operations by driver, location, operation and outcome.",
    ["driver", "location", "operation", "outcome"],
)
OPERATION_SECONDS = Histogram(
    "wharf_storage_operation_seconds",
    "Duration of storage operations.",
    ["driver", "operation"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600),
)
BYTES = Counter(
    "wharf_storage_bytes_total",
    "Bytes moved through the storage library.",
    ["driver", "location", "direction"],
)
MULTIPART_UPLOADS = Counter(
    "wharf_storage_multipart_uploads_total",
    "Multipart uploads started and completed on S3-family backends.",
    ["location", "event"],
)
