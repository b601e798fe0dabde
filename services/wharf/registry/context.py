"""What every registry request needs: storage, the database, token auth, where uploads go."""

from __future__ import annotations

from dataclasses import dataclass, field

from wharf.db.engine import Database
from wharf.registry.auth import AccessPolicy, SigningKey, TokenIssuer, TokenVerifier
from wharf.registry.auth.login_cache import LoginCache
from wharf.storage import DistributedStorage

DEFAULT_ISSUER = "quay"
"""Quay's `INSTANCE_SERVICE_KEY_SERVICE` default: the `iss` of every token."""
REALM_PATH = "/v2/auth"


@dataclass(frozen=True)
class RegistryAuth:
    """Docker token auth: who signs and checks tokens, and what the policy allows."""

    issuer: TokenIssuer
    verifier: TokenVerifier
    policy: AccessPolicy
    service: str
    """The `service` of challenges and the `aud` of tokens (Quay's `SERVER_HOSTNAME`)."""
    realm_path: str = REALM_PATH
    logins: LoginCache = field(default_factory=LoginCache)
    """Recent successful password checks (see login_cache.py)."""

    @classmethod
    def create(
        cls,
        key: SigningKey,
        *,
        service: str,
        policy: AccessPolicy | None = None,
        issuer: str = DEFAULT_ISSUER,
    ) -> RegistryAuth:
        return cls(
            issuer=TokenIssuer(key, issuer=issuer, audience=service),
            verifier=TokenVerifier.for_signing_key(key, issuer=issuer, audience=service),
            policy=policy or AccessPolicy(),
            service=service,
        )


@dataclass
class RegistryContext:
    storage: DistributedStorage
    db: Database
    location_ids: dict[str, int]
    """`imagestoragelocation` ids of the configured locations."""
    auth: RegistryAuth
    public_on_create: bool = False
    """Repositories created by a push are public (mirror mode) or private (Quay's default)."""
    max_blob_size: int = 20 * 1024**3
    """Quay's MAXIMUM_LAYER_SIZE default (20G)."""
    upload_locations: list[str] = field(default_factory=list)
    blob_redirects: bool = True
    """Answer a blob GET with a 307 to the storage's direct URL when the driver offers one
    (an S3 presigned URL); off, the registry streams every blob itself."""

    def __post_init__(self) -> None:
        if not self.upload_locations:
            self.upload_locations = self.storage.preferred_locations[:1]

    @property
    def upload_location(self) -> str:
        return self.upload_locations[0]
