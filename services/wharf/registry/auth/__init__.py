"""Docker token authentication for the registry, the pure parts (no routes).

- `scopes`: parse `scope` values into `Grant`s (`repository:ns/app:pull,push`,
  `registry:catalog:*`), with precise `ScopeError`s.
- `keys`: the RSA signing key (PEM file, or generated and saved 0600) and its RFC 7638 `kid`.
- `tokens`: issue and verify RS256 JWTs in Quay's claim shape (`TokenIssuer`, `TokenVerifier`).
- `passwords`: bcrypt checks against Quay's `user.password_hash`, off the event loop.
- `challenge`: `WWW-Authenticate` values and `Authorization` header parsing.
- `permissions`: the actions a user may take on a repository, from Quay's tables.
"""

from wharf.registry.auth.challenge import (
    AuthorizationError,
    BasicCredentials,
    BearerCredentials,
    Credentials,
    bearer_challenge,
    parse_authorization,
    registry_challenge,
    repository_challenge,
)
from wharf.registry.auth.keys import (
    SigningKey,
    SigningKeyError,
    key_id,
    load_or_create_signing_key,
    load_public_key,
    load_signing_key,
)
from wharf.registry.auth.passwords import (
    PasswordError,
    hash_password,
    verify_password,
    verify_password_async,
)
from wharf.registry.auth.permissions import (
    AccessPolicy,
    RepositoryAccess,
    ScopeAuthorization,
    authorize_scopes,
    repository_access,
)
from wharf.registry.auth.scopes import Grant, ScopeError, parse_scope, parse_scopes
from wharf.registry.auth.tokens import (
    ANONYMOUS_SUBJECT,
    IssuedToken,
    TokenError,
    TokenIssuer,
    TokenVerifier,
    VerifiedToken,
    quay_context,
)

__all__ = [
    "ANONYMOUS_SUBJECT",
    "AccessPolicy",
    "AuthorizationError",
    "BasicCredentials",
    "BearerCredentials",
    "Credentials",
    "Grant",
    "IssuedToken",
    "PasswordError",
    "RepositoryAccess",
    "ScopeAuthorization",
    "ScopeError",
    "SigningKey",
    "SigningKeyError",
    "TokenError",
    "TokenIssuer",
    "TokenVerifier",
    "VerifiedToken",
    "authorize_scopes",
    "bearer_challenge",
    "hash_password",
    "key_id",
    "load_or_create_signing_key",
    "load_public_key",
    "load_signing_key",
    "parse_authorization",
    "parse_scope",
    "parse_scopes",
    "quay_context",
    "registry_challenge",
    "repository_access",
    "repository_challenge",
    "verify_password",
    "verify_password_async",
]
