"""Registry bearer tokens: RS256 JWTs in the shape Quay issues, checked the way Quay checks them.

Header: `{"alg": "RS256", "kid": <key id>, "typ": "JWT"}` (see `keys.py` for the key id).
Claims, in this order:
- `iss`: the issuer name (Quay's `INSTANCE_SERVICE_KEY_SERVICE`, default `quay`);
- `sub`: the username (robots: `<ns>+<name>`), or Quay's `(anonymous)` (the spec says `""`;
  the verifier reads both as anonymous);
- `aud`: the registry's service name (`SERVER_HOSTNAME`). Quay copies the client's `service`
  query parameter instead, and then only accepts `SERVER_HOSTNAME` on the way back in; Wharf
  always writes the name it verifies;
- `exp`, `nbf`, `iat`: integer seconds, `nbf = iat = now`, `exp = now + lifetime` (3600 s);
- `jti`: a random id (the spec has one; Quay does not);
- `access`: `[{"type", "name", "actions"}]`, one entry per requested resource, possibly with
  `actions: []` (Quay's downscoping keeps refused entries);
- `context`: Quay's signed auth context (`quay_context`), so that Quay accepts the token while
  both run against one database.

Verification (`TokenVerifier`): only RS256 (checked on the header before anything else, so
`none` and HS256-signed-with-the-public-key never reach a key), `kid` required and looked up
among the configured keys (a key embedded in the token, `jwk` or `x5c`, is never trusted),
signature, issuer, audience, then `nbf`/`iat`/`exp` with 30 s of leeway and
`exp - iat <= 3660` (Quay's `REGISTRY_JWT_AUTH_MAX_FRESH_S`), `sub` present, `access` well formed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from wharf.registry.auth.keys import SigningKey
from wharf.registry.auth.scopes import Grant

ALGORITHM = "RS256"
DEFAULT_LIFETIME_S = 3600
"""Quay's `TOKEN_VALIDITY_LIFETIME_S`."""
MIN_LIFETIME_S = 60
"""The token spec: never hand out a token with less than 60 s to live."""
MAX_LIFETIME_S = 3660
"""Quay's `REGISTRY_JWT_AUTH_MAX_FRESH_S`: the longest `exp - iat` a verifier accepts."""
LEEWAY_S = 30
"""Quay's `JWT_CLOCK_SKEW_SECONDS`."""
ANONYMOUS_SUBJECT = "(anonymous)"
MAX_TOKEN_LENGTH = 16 * 1024
CLAIM_TUF_ROOTS = "com.apostille.roots"
CLAIM_TUF_ROOT = "com.apostille.root"
DISABLED_TUF_ROOT = "$disabled"
_REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "nbf", "iat"]

Clock = Callable[[], float]


class TokenError(Exception):
    """A bearer token that does not verify; `str()` is safe to show the client."""


def quay_context(
    username: str | None,
    *,
    user_uuid: str | None = None,
    robot: bool = False,
    repositories: Iterable[str] = (),
) -> dict[str, Any]:
    """Quay's `context` claim (auth context version 2, with the legacy `kind`/`user` keys).

    `repositories` are the `namespace/repo` names of the token's repository scopes; Wharf has no
    content trust, so each TUF root is `$disabled`, as in Quay with signing off.
    """
    context: dict[str, Any]
    if username is None:
        context = {"version": 2, "entity_kind": "anonymous", "kind": "anonymous"}
    elif robot:
        context = {"version": 2, "entity_kind": "robot", "entity_reference": username}
        context.update(kind="user", user=username)
    else:
        context = {"version": 2, "entity_kind": "user", "entity_reference": user_uuid}
        context.update(kind="user", user=username)
    context[CLAIM_TUF_ROOTS] = {name: DISABLED_TUF_ROOT for name in repositories}
    context[CLAIM_TUF_ROOT] = DISABLED_TUF_ROOT
    return context


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)
    issued_at: int
    expires_in: int
    claims: Mapping[str, Any] = field(repr=False)

    def response_body(self) -> dict[str, Any]:
        """The `/v2/auth` answer. Quay sends only `token` (clients then assume 60 s); Wharf adds
        the spec's optional fields, which every client accepts."""
        issued = dt.datetime.fromtimestamp(self.issued_at, dt.UTC)
        return {
            "token": self.token,
            "access_token": self.token,
            "expires_in": self.expires_in,
            "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


class TokenIssuer:
    def __init__(
        self,
        key: SigningKey,
        *,
        issuer: str,
        audience: str,
        lifetime_s: int = DEFAULT_LIFETIME_S,
        clock: Clock = time.time,
    ) -> None:
        if lifetime_s < MIN_LIFETIME_S:
            raise ValueError(f"token lifetime {lifetime_s} s is below {MIN_LIFETIME_S} s")
        if not issuer or not audience:
            raise ValueError("a token issuer needs an issuer name and an audience")
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self.lifetime_s = lifetime_s
        self._clock = clock

    def issue(
        self,
        subject: str | None,
        access: Iterable[Grant],
        *,
        context: Mapping[str, Any] | None = None,
    ) -> IssuedToken:
        """Sign a token for `subject` (None: anonymous) with these access entries."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": ANONYMOUS_SUBJECT if subject is None else subject,
            "aud": self.audience,
            "exp": now + self.lifetime_s,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "access": [grant.claim() for grant in access],
        }
        if context is not None:
            claims["context"] = dict(context)
        headers = {"kid": self.key.kid, "typ": "JWT"}
        token = jwt.encode(claims, self.key.private_key, algorithm=ALGORITHM, headers=headers)
        return IssuedToken(token, now, self.lifetime_s, claims)


@dataclass(frozen=True)
class VerifiedToken:
    subject: str | None
    """The username, or None for an anonymous token."""
    access: tuple[Grant, ...]
    key_id: str
    issued_at: int
    expires_at: int
    token_id: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)

    def allows(self, resource_type: str, name: str, action: str) -> bool:
        return any(
            grant.type == resource_type and grant.name == name and grant.allows(action)
            for grant in self.access
        )

    def actions(self, resource_type: str, name: str) -> frozenset[str]:
        """Every action the token grants on one resource."""
        return frozenset(
            action
            for grant in self.access
            if grant.type == resource_type and grant.name == name
            for action in grant.actions
        )


def _numeric_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenError(f"the {name} claim is not a number")
    return int(value)


VERIFIED_CACHE_SIZE = 4096


class TokenVerifier:
    def __init__(
        self,
        keys: Mapping[str, rsa.RSAPublicKey],
        *,
        issuer: str | Iterable[str],
        audience: str,
        leeway_s: int = LEEWAY_S,
        max_lifetime_s: int = MAX_LIFETIME_S,
        clock: Clock = time.time,
    ) -> None:
        if not keys:
            raise ValueError("a token verifier needs at least one public key")
        self.keys = dict(keys)
        self.issuers = (issuer,) if isinstance(issuer, str) else tuple(issuer)
        self.audience = audience
        self.leeway_s = leeway_s
        self.max_lifetime_s = max_lifetime_s
        self._clock = clock
        self._verified: OrderedDict[bytes, VerifiedToken] = OrderedDict()

    @classmethod
    def for_signing_key(
        cls, key: SigningKey, *, issuer: str | Iterable[str], audience: str, **kwargs: Any
    ) -> TokenVerifier:
        return cls({key.kid: key.public_key}, issuer=issuer, audience=audience, **kwargs)

    def _key_for(self, token: str) -> tuple[str, rsa.RSAPublicKey]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:  # also: any `crit` extension (none is supported)
            raise TokenError("malformed token header") from error
        algorithm = header.get("alg")
        if not isinstance(algorithm, str):
            raise TokenError("the token header has no algorithm (alg)")
        if algorithm != ALGORITHM:
            raise TokenError(f"token algorithm {algorithm[:16]!r} is not allowed: only {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("the token header has no key id (kid)")
        key = self.keys.get(kid)
        if key is None:
            raise TokenError("the token is signed by an unknown key (kid)")
        return kid, key

    def _decode(self, token: str, key: rsa.RSAPublicKey) -> dict[str, Any]:
        options: Any = {
            "require": _REQUIRED_CLAIMS,
            "verify_exp": False,  # the times are checked below, with this verifier's clock
            "verify_nbf": False,
            "verify_iat": False,
            "verify_sub": False,  # checked below (PyJWT >= 2.10 would raise a generic error)
            "verify_iss": False,  # checked below (a list of issuers needs a recent PyJWT)
        }
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                options=options,
            )
        except jwt.InvalidSignatureError as error:
            raise TokenError("the token signature does not verify") from error
        except jwt.MissingRequiredClaimError as error:
            raise TokenError(f"the token has no {error.claim} claim") from error
        except jwt.InvalidAudienceError as error:
            raise TokenError("the token is meant for another service (aud)") from error
        except jwt.PyJWTError as error:
            raise TokenError("malformed token") from error

    def _check_times(self, claims: Mapping[str, Any]) -> tuple[int, int]:
        now = self._clock()
        issued_at = _numeric_claim(claims, "iat")
        not_before = _numeric_claim(claims, "nbf")
        expires_at = _numeric_claim(claims, "exp")
        if not_before > now + self.leeway_s:
            raise TokenError("the token is not valid yet (nbf)")
        if issued_at > now + self.leeway_s:
            raise TokenError("the token was issued in the future (iat)")
        if expires_at <= now - self.leeway_s:
            raise TokenError("the token has expired")
        if expires_at - issued_at > self.max_lifetime_s:
            raise TokenError(f"the token lives longer than {self.max_lifetime_s} s")
        return issued_at, expires_at

    def verify(self, token: str) -> VerifiedToken:
        """Check everything about `token`; raise `TokenError` saying what is wrong.

        A token that verified is remembered (by its SHA-256) until it expires: a client sends
        the same token on every request, and an RSA verification per request is a measurable
        share of a manifest GET."""
        key = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(key)
        if known is not None:
            if known.expires_at > self._clock() - self.leeway_s:
                self._verified.move_to_end(key)
                return known
            del self._verified[key]
        verified = self._verify(token)
        self._verified[key] = verified
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return verified

    def _verify(self, token: str) -> VerifiedToken:
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenError(f"the token is longer than {MAX_TOKEN_LENGTH} characters")
        if token.count(".") != 2:
            raise TokenError("not a signed JWT (header.payload.signature)")
        kid, key = self._key_for(token)
        claims = self._decode(token, key)
        if claims["iss"] not in self.issuers:
            raise TokenError("the token comes from an untrusted issuer (iss)")
        issued_at, expires_at = self._check_times(claims)
        subject = claims["sub"]
        if not isinstance(subject, str):
            raise TokenError("the sub claim is not a string")
        raw_access = claims.get("access", [])
        if not isinstance(raw_access, list):
            raise TokenError("the access claim is not a list")
        try:
            access = tuple(Grant.from_claim(entry) for entry in raw_access)
        except ValueError as error:
            raise TokenError(f"malformed access claim: {error}") from error
        context = claims.get("context", {})
        if not isinstance(context, dict):
            raise TokenError("the context claim is not an object")
        token_id = claims.get("jti")
        return VerifiedToken(
            subject=None if subject in ("", ANONYMOUS_SUBJECT) else subject,
            access=access,
            key_id=kid,
            issued_at=issued_at,
            expires_at=expires_at,
            token_id=token_id if isinstance(token_id, str) else None,
            context=context,
        )
