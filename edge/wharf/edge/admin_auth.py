"""Who may call the edge admin API, and whom a change made through it is recorded as.

Named bearer tokens: `AdminTokenGuard` answers 401 to a request without a valid one and puts
the token's name in the request scope, where `author_of` finds it.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

ADMIN_TOKEN_ENV = "WHARF_EDGE_ADMIN_TOKEN"  # noqa: S105 - the variable's name
MIN_TOKEN_LENGTH = 16
_CALLER_SCOPE_KEY = "wharf.edge.admin"
_PRINTABLE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class AdminToken:
    name: str
    secret: str = field(repr=False)


class AdminAuth:
    """Bearer tokens, each with a name. At least one, each of 16 characters or more."""

    def __init__(self, tokens: Iterable[AdminToken]) -> None:
        self.tokens = tuple(tokens)
        if not self.tokens:
            raise ValueError("the edge admin API needs at least one token")
        for token in self.tokens:
            if len(token.secret) < MIN_TOKEN_LENGTH:
                raise ValueError(
                    f"admin token {token.name!r} is shorter than {MIN_TOKEN_LENGTH} characters"
                )

    @classmethod
    def parse(cls, text: str, default_name: str = "admin") -> AdminAuth:
        """A token file: one bare token, or lines `NAME TOKEN` (`#` starts a comment)."""
        tokens = []
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if line:
                name, _, secret = line.rpartition(" ")
                tokens.append(AdminToken(name.strip() or default_name, secret))
        return cls(tokens)

    @classmethod
    def from_env(cls, default_name: str = "admin") -> AdminAuth:
        return cls.parse(os.environ.get(ADMIN_TOKEN_ENV, ""), default_name)

    def identify(self, authorization: str | None) -> str | None:
        """The name of the token in an Authorization header, or None."""
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        candidate = presented.strip().encode()
        found = None
        for token in self.tokens:  # every token is compared: timing tells nothing
            if hmac.compare_digest(candidate, token.secret.encode()):
                found = token.name
        return found


class AdminTokenGuard:
    """401 unless the request carries a valid token; the token's name goes in the scope."""

    def __init__(self, app: ASGIApp, auth: AdminAuth) -> None:
        self.app, self.auth = app, auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"authorization")
        name = self.auth.identify(raw.decode("latin-1") if raw else None)
        if name is None:
            response = JSONResponse(
                {"error": "a valid admin bearer token is required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="wharf-edge-admin"'},
            )
            await response(scope, receive, send)
            return
        scope[_CALLER_SCOPE_KEY] = name
        await self.app(scope, receive, send)


def author_of(request: Request) -> str:
    """The author recorded for a change: the token's name, with `X-Wharf-Author` in front."""
    name = str(request.scope[_CALLER_SCOPE_KEY])
    claimed = _PRINTABLE.sub("", request.headers.get("x-wharf-author", "")).strip()[:100]
    return f"{claimed} (token {name})" if claimed and claimed != name else name
