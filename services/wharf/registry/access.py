"""Request-level auth for /v2: every route calls `authorize` (or `authenticate`) first.

- A request without `Authorization: Bearer <token>` gets 401 `UNAUTHORIZED` and the challenge
  that sends the client to `/v2/auth` (`Bearer realm=...,service=...,scope=...`).
- A token that does not verify, or a malformed header: 401 with `error="invalid_token"`.
- A valid token without the action the request needs: 401 with `error="insufficient_scope"`
  (distribution answers 401 as well: Docker clients fetch a new token only on a 401).
- The repository name is checked before the token (400 `NAME_INVALID`), so that a challenge
  always names a well-formed scope.

Actions: reads (GET/HEAD of blobs and upload status) need `pull`; uploads (POST, PATCH, PUT,
DELETE of an upload) need `push`; a cross-repository mount also needs `pull` on the source.
Challenges ask for `pull` for reads and `pull,push` for writes, as Quay's do.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from wharf.registry.auth import (
    AuthorizationError,
    BearerCredentials,
    TokenError,
    VerifiedToken,
    bearer_challenge,
    parse_authorization,
    repository_challenge,
)
from wharf.registry.auth.challenge import (
    READ_ACTIONS,
    WRITE_ACTIONS,
    ChallengeError,
)
from wharf.registry.auth.scopes import DELETE, PULL, PUSH, REPOSITORY
from wharf.registry.context import RegistryContext
from wharf.registry.errors import UNAUTHORIZED, RegistryError
from wharf.registry.names import RepositoryName, parse_repository_name

INSUFFICIENT_SCOPE: ChallengeError = "insufficient_scope"
INVALID_TOKEN: ChallengeError = "invalid_token"  # noqa: S105 - an RFC 6750 error code
CHALLENGE_ACTIONS: dict[str, tuple[str, ...]] = {
    PULL: READ_ACTIONS,
    PUSH: WRITE_ACTIONS,
    DELETE: (DELETE,),
}


def registry_context(request: Request) -> RegistryContext:
    context: RegistryContext = request.app.state.registry
    return context


def realm(request: Request) -> str:
    """`<scheme>://<host>[/<root path>]/v2/auth`, from the request's own base URL."""
    auth = registry_context(request).auth
    return str(request.base_url).rstrip("/") + auth.realm_path


@dataclass(frozen=True)
class Authorized:
    """A request allowed to act on `name` with the verified `token`."""

    name: RepositoryName
    token: VerifiedToken

    def allows(self, repository: str | RepositoryName, action: str) -> bool:
        return self.token.allows(REPOSITORY, str(repository), action)


def challenge(
    request: Request,
    name: str | None = None,
    actions: tuple[str, ...] = (),
    *,
    error: ChallengeError | None = None,
    scopes: tuple[str, ...] = (),
) -> str:
    """The `WWW-Authenticate` value: the registry's (no `name`, optionally with registry-wide
    `scopes` such as `registry:catalog:*`) or a repository's."""
    auth = registry_context(request).auth
    if name is None:
        return bearer_challenge(realm(request), auth.service, scopes, error=error)
    return repository_challenge(realm(request), auth.service, name, actions, error=error)


def _unauthorized(
    request: Request,
    name: str | None,
    actions: tuple[str, ...],
    reason: str | None,
    error: ChallengeError | None,
    scopes: tuple[str, ...] = (),
) -> RegistryError:
    return RegistryError(
        UNAUTHORIZED,
        None if reason is None else {"reason": reason},
        headers={"WWW-Authenticate": challenge(request, name, actions, error=error, scopes=scopes)},
    )


def verified_token(
    request: Request,
    name: str | None = None,
    actions: tuple[str, ...] = (),
    *,
    scopes: tuple[str, ...] = (),
) -> VerifiedToken:
    """The request's verified bearer token, or a 401 with the challenge for `name` (or for
    the registry-wide `scopes`)."""
    verifier = registry_context(request).auth.verifier
    try:
        credentials = parse_authorization(request.headers.get("authorization"))
    except AuthorizationError as error:
        raise _unauthorized(request, name, actions, str(error), INVALID_TOKEN, scopes) from None
    if not isinstance(credentials, BearerCredentials):
        # No header, or Basic credentials: the client must get a token from the realm first.
        raise _unauthorized(request, name, actions, None, None, scopes)
    try:
        return verifier.verify(credentials.token)
    except TokenError as error:
        raise _unauthorized(request, name, actions, str(error), INVALID_TOKEN, scopes) from None


def authenticate(request: Request) -> VerifiedToken:
    """`GET /v2/`: any valid token (anonymous ones included), else the registry challenge."""
    return verified_token(request)


def authorize(request: Request, name: str, action: str) -> Authorized:
    """Check that the request's token grants `action` on the repository `name`."""
    parsed = parse_repository_name(name)
    actions = CHALLENGE_ACTIONS[action]
    token = verified_token(request, str(parsed), actions)
    if not token.allows(REPOSITORY, str(parsed), action):
        raise _unauthorized(
            request,
            str(parsed),
            actions,
            f"the token does not grant {action} on {parsed}",
            INSUFFICIENT_SCOPE,
        )
    return Authorized(parsed, token)
