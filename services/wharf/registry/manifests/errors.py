"""The refusals of the manifest and digest parsers, each with a human-readable reason."""

from __future__ import annotations


class ManifestError(Exception):
    """Base of every refusal of `parse_manifest`; `reason` says precisely what is wrong."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        message = f"{field}: {reason}" if field else reason
        super().__init__(message)
        self.reason = message
        self.field = field


class ManifestInvalid(ManifestError):
    """Not a valid manifest: the registry answers `MANIFEST_INVALID` (400)."""


class ManifestUnsupported(ManifestInvalid):
    """Well formed, but of a kind Wharf does not accept: Docker schema 1, a media type that is
    not a manifest type, a digest algorithm other than sha256/sha512. Still `MANIFEST_INVALID`
    unless the registry chooses otherwise."""


class ManifestTooLarge(ManifestError):
    """Longer than the registry accepts: the spec's `413 Payload Too Large`."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the manifest is {size} bytes, more than the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class DigestError(ValueError):
    """Base of the refusals of `parse_digest` and `digest_of`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DigestInvalid(DigestError):
    """Does not match the OCI digest grammar, or the encoding its algorithm requires."""


class DigestUnsupported(DigestError):
    """Well formed, but the algorithm is not one Wharf can verify (only sha256 and sha512)."""
