"""`WWW-Authenticate` challenges, and parsing of `Authorization` headers.

Challenges (token spec; RFC 6750 section 3), with Quay's exact strings:
- `/v2/`: `Bearer realm="https://host/v2/auth",service="host"` (no scope);
- a repository action: `...,scope="repository:ns/app:pull"` for reads, `:pull,push` for
  writes (Quay asks for `pull,push` for every write, deletes included);
- a valid token lacking an action: distribution appends `error="insufficient_scope"`, and a
  token that does not verify gets `error="invalid_token"`. Quay appends neither. Send both with
  401, as distribution does: Docker clients fetch a new token only on a 401.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from wharf.registry.auth.scopes import PULL, PUSH, REPOSITORY, Grant

INSUFFICIENT_SCOPE = "insufficient_scope"
INVALID_TOKEN = "invalid_token"  # noqa: S105 - an RFC 6750 error code, not a secret
ChallengeError = Literal["insufficient_scope", "invalid_token"]

MAX_AUTHORIZATION_LENGTH = 16 * 1024
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SCHEME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _quoted(value: str) -> str:
    """An RFC 9110 quoted-string (backslash before `"` and `\\`)."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("challenge parameters cannot hold control characters")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def bearer_challenge(
    realm: str,
    service: str,
    scopes: Iterable[Grant | str] = (),
    *,
    error: ChallengeError | None = None,
) -> str:
    """`Bearer realm="...",service="..."[,scope="..."][,error="..."]`.

    Several scopes are joined by spaces into one `scope` parameter (the token spec).
    """
    parts = [f"realm={_quoted(realm)}", f"service={_quoted(service)}"]
    rendered = (s.scope() if isinstance(s, Grant) else s for s in scopes)
    scope = " ".join(part for part in rendered if part)
    if scope:
        parts.append(f"scope={_quoted(scope)}")
    if error is not None:
        parts.append(f"error={_quoted(error)}")
    return "Bearer " + ",".join(parts)


def registry_challenge(realm: str, service: str) -> str:
    """The challenge of `GET /v2/` without credentials."""
    return bearer_challenge(realm, service)


def repository_challenge(
    realm: str,
    service: str,
    repository: str,
    actions: Sequence[str],
    *,
    error: ChallengeError | None = None,
) -> str:
    """The challenge for `actions` on `repository` (`namespace/repo`)."""
    return bearer_challenge(
        realm, service, [Grant(REPOSITORY, repository, tuple(actions))], error=error
    )


READ_ACTIONS: tuple[str, ...] = (PULL,)
WRITE_ACTIONS: tuple[str, ...] = (PULL, PUSH)
"""What Quay's challenges ask for: reads `pull`; writes, deletes and admin `pull,push`."""


class AuthorizationError(ValueError):
    """A malformed `Authorization` header; `str()` never contains the credentials."""


@dataclass(frozen=True)
class BasicCredentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class BearerCredentials:
    token: str = field(repr=False)


Credentials = BasicCredentials | BearerCredentials


def parse_authorization(header: str | None) -> Credentials | None:
    """Read an `Authorization` header: Basic (RFC 7617) or Bearer (RFC 6750).

    None when there is no header or it is blank (Quay treats both as anonymous). The scheme is
    case-insensitive. Anything else raises `AuthorizationError` saying what is wrong.
    """
    if header is None or not header.strip():
        return None
    if len(header) > MAX_AUTHORIZATION_LENGTH:
        raise AuthorizationError(
            f"the Authorization header is longer than {MAX_AUTHORIZATION_LENGTH} characters"
        )
    scheme, _, rest = header.strip().partition(" ")
    if not _SCHEME_RE.fullmatch(scheme):
        raise AuthorizationError("the Authorization header does not start with a scheme")
    credentials = rest.strip(" ")
    lowered = scheme.lower()
    if lowered == "basic":
        return _parse_basic(credentials)
    if lowered == "bearer":
        return _parse_bearer(credentials)
    raise AuthorizationError(
        f"unsupported authorization scheme {scheme[:20]!r}: use Basic or Bearer"
    )


def _parse_basic(credentials: str) -> BasicCredentials:
    if not credentials:
        raise AuthorizationError("Basic authorization without credentials")
    if not _TOKEN68_RE.fullmatch(credentials):
        raise AuthorizationError("Basic credentials must be one base64 string")
    try:
        decoded = base64.b64decode(credentials, validate=True)
    except (binascii.Error, ValueError) as error:
        raise AuthorizationError("Basic credentials are not valid base64") from error
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError as error:
        raise AuthorizationError("Basic credentials are not UTF-8") from error
    username, colon, password = text.partition(":")
    if not colon:
        raise AuthorizationError("Basic credentials have no ':' between username and password")
    if not username:
        raise AuthorizationError("Basic credentials have an empty username")
    if not password:
        raise AuthorizationError("Basic credentials have an empty password")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise AuthorizationError("Basic credentials contain control characters")
    return BasicCredentials(username, password)


def _parse_bearer(credentials: str) -> BearerCredentials:
    if not credentials:
        raise AuthorizationError("Bearer authorization without a token")
    if not _TOKEN68_RE.fullmatch(credentials):
        raise AuthorizationError("the Bearer token has characters outside the token68 set")
    return BearerCredentials(credentials)
