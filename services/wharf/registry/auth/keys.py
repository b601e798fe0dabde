"""The RSA key that signs registry tokens: loading, generation, and its key id (`kid`).

Key id: the RFC 7638 JWK thumbprint of the public key (SHA-256 over `{"e","kty","n"}`,
base64url without padding). Why this one and not libtrust's `ABCD:EFGH:...` fingerprint:
- distribution v3 (the current registry) names the keys of its `rootcertbundle` by exactly this
  thumbprint, so a stock distribution registry given Wharf's certificate trusts Wharf's tokens
  without any extra configuration; libtrust is archived, and v3 only reads its format from
  key sets that spell it out;
- it is a standard, computed from the public key alone, and it is what a JWKS would publish.
Quay does not derive its `kid`: it reads an opaque string from `INSTANCE_SERVICE_KEY_KID_LOCATION`.
To sign with Quay's own service key (so that Quay accepts Wharf's tokens), pass that string as
`kid` when loading the key.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

log = logging.getLogger(__name__)

KEY_SIZE = 2048
MIN_KEY_SIZE = 2048
PUBLIC_EXPONENT = 65537
DEFAULT_KEY_FILENAME = "registry-token-key.pem"
"""The file name `load_or_create_signing_key` is given inside a data directory."""


class SigningKeyError(ValueError):
    """A signing or verification key Wharf cannot use."""


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """The RFC 7638 SHA-256 JWK thumbprint of an RSA public key (43 base64url characters)."""
    numbers = public_key.public_numbers()
    members = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("ascii")
    digest = hashlib.sha256(canonical).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    """A private RSA key and the `kid` its tokens carry (derived unless given)."""

    private_key: rsa.RSAPrivateKey = field(repr=False)
    kid: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, rsa.RSAPrivateKey):
            raise SigningKeyError("registry tokens are signed with RS256: the key must be RSA")
        if self.private_key.key_size < MIN_KEY_SIZE:
            raise SigningKeyError(
                f"the RSA key has {self.private_key.key_size} bits; at least {MIN_KEY_SIZE} needed"
            )
        if not self.kid:
            object.__setattr__(self, "kid", key_id(self.private_key.public_key()))

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_SIZE))

    @classmethod
    def from_pem(cls, data: bytes, *, kid: str | None = None) -> SigningKey:
        """An unencrypted PEM private key (PKCS#8 or PKCS#1 `RSA PRIVATE KEY`)."""
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as error:
            # No detail from the parser: it could quote key material.
            raise SigningKeyError("not an unencrypted PEM private key") from error
        if not isinstance(key, rsa.RSAPrivateKey):
            raise SigningKeyError("registry tokens are signed with RS256: the key must be RSA")
        return cls(key, kid or "")

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def load_public_key(data: bytes) -> rsa.RSAPublicKey:
    """An RSA public key from PEM: `PUBLIC KEY`, `RSA PUBLIC KEY` or an X.509 certificate."""
    try:
        if b"CERTIFICATE" in data:
            key: object = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as error:
        raise SigningKeyError("not a PEM public key or certificate") from error
    if not isinstance(key, rsa.RSAPublicKey):
        raise SigningKeyError("registry tokens are verified with RS256: the key must be RSA")
    return key


def load_signing_key(path: str | os.PathLike[str], *, kid: str | None = None) -> SigningKey:
    """Load the PEM private key at `path`; warn when others may read it."""
    path = Path(path)
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as error:
        raise SigningKeyError(
            f"cannot read the token signing key {path}: {error.strerror}"
        ) from error
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the token signing key %s is readable by other users (mode %o)", path, mode)
    try:
        return SigningKey.from_pem(data, kid=kid)
    except SigningKeyError as error:
        raise SigningKeyError(f"{path}: {error}") from error


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def load_or_create_signing_key(path: str | os.PathLike[str]) -> SigningKey:
    """Load the key at `path`, or generate an RSA-2048 key and save it there with mode 0600.

    For a data directory (mirror mode), pass `data_dir / DEFAULT_KEY_FILENAME`. The new file
    appears atomically and is never overwritten: when several processes start at once, the
    first link wins and the others load that key.
    """
    path = Path(path)
    if path.exists():
        return load_signing_key(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = SigningKey.generate()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key.private_pem())
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # fails if another process saved its key first
        except FileExistsError:
            return load_signing_key(path)
        _fsync_directory(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    log.info("generated a new token signing key %s (kid %s)", path, key.kid)
    return key
