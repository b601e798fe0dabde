"""Accept matching for manifest GETs, and Quay's tag lock key."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wharf.registry.negotiation import accepts, parse_accept
from wharf.registry.tags import tag_lock_key

OCI = "application/vnd.oci.image.manifest.v1+json"
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], True),
        ([""], True),
        (["garbage"], True),  # nothing parseable is no preference
        ([OCI], True),
        ([OCI.upper()], True),
        ([DOCKER], False),
        ([f"{DOCKER}, {OCI}"], True),
        ([DOCKER, OCI], True),  # several headers are one list
        ([f"{OCI};q=0"], False),
        ([f"{OCI};q=0.001"], True),
        ([f"*/*, {OCI};q=0"], False),  # the most specific range decides
        ([f"application/*;q=0, {OCI}"], True),
        (["*/*"], True),
        (["application/*"], True),
        (["text/*"], False),
        ([f"{OCI};q=abc"], True),  # a bad weight is ignored, not a refusal
        (["*/json"], True),  # malformed range dropped, leaving no preference
    ],
)
def test_accepts(headers: list[str], expected: bool) -> None:
    assert accepts(headers, OCI) is expected


def test_parse_accept_weights() -> None:
    ranges = parse_accept([f"{OCI}; q=0.5 , */*;Q=2"])
    assert [(r.type, r.subtype, r.quality) for r in ranges] == [
        ("application", "vnd.oci.image.manifest.v1+json", 0.5),
        ("*", "*", 1.0),
    ]


def test_tag_lock_key_matches_quay() -> None:
    # Quay: struct.unpack(">q", sha256(f"retarget_tag:{id}").digest()[:8])
    for repository_id in (1, 42, 2**31 - 1):
        seed = hashlib.sha256(f"retarget_tag:{repository_id}".encode()).digest()
        assert tag_lock_key(repository_id) == struct.unpack(">q", seed[:8])[0]


@given(st.integers(min_value=1, max_value=2**31 - 1))
def test_tag_lock_key_is_a_signed_int64(repository_id: int) -> None:
    assert -(2**63) <= tag_lock_key(repository_id) < 2**63
