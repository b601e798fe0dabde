"""`GET /v2/auth`: the Docker token endpoint (distribution's token spec, Quay's rules).

- Credentials: none (anonymous) or Basic, checked against Quay's `user.password_hash`
  (bcrypt; a success is remembered for a minute, see auth/login_cache.py). An unknown user,
  a wrong password, a user without a password (organisations, robots) or a disabled user:
  401 `UNAUTHORIZED`, all with the same message.
- Anonymous requests without any scope: 401, as Quay answers (`docker login` always sends
  credentials, so only a client that has nothing to ask for gets there).
- `scope`: one query parameter per resource (space-separated ones are accepted too); a scope
  that does not parse is a 400 saying why.
- Each scope is downscoped to what the caller may do (`authorize_scopes`); a refused action is
  never an error, the token just lacks it (the entry stays, possibly with no actions).
- Repositories are not created here (Quay creates them during `/v2/auth`): the push that needs
  one creates it, after checking the token and the policy again (see `routes.py`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from wharf.db.models import User
from wharf.registry.access import registry_context
from wharf.registry.auth import (
    AuthorizationError,
    BasicCredentials,
    BearerCredentials,
    ScopeError,
    authorize_scopes,
    parse_authorization,
    parse_scopes,
    quay_context,
    verify_password_async,
)
from wharf.registry.auth.scopes import REPOSITORY
from wharf.registry.errors import UNAUTHORIZED, ErrorCode, RegistryError

SCOPE_INVALID = ErrorCode("UNSUPPORTED", 400, "invalid scope")
INVALID_LOGIN = "invalid username or password"

router = APIRouter()


async def _login(request: Request, credentials: BasicCredentials) -> User:
    ctx = registry_context(request)
    async with ctx.db.reader(fresh=True) as session:
        user = (
            await session.execute(select(User).where(User.username == credentials.username))
        ).scalar_one_or_none()
    can_log_in = user is not None and not user.organization and not user.robot
    password_hash = user.password_hash if user is not None and can_log_in else None
    logins = ctx.auth.logins
    if logins.verified(credentials.username, credentials.password, password_hash):
        matches = True  # checked by bcrypt moments ago: a push asks for several tokens
    else:
        # Always one bcrypt check (a dummy one without a hash): the answer takes as long.
        matches = await verify_password_async(credentials.password, password_hash)
        # A disabled user's right password is not remembered: a fast second answer would
        # tell a guesser it was right, where every answer must take as long.
        if matches and password_hash is not None and user is not None and user.enabled:
            logins.remember(credentials.username, credentials.password, password_hash)
    if user is None or not matches or not user.enabled:
        raise RegistryError(UNAUTHORIZED, {"reason": INVALID_LOGIN}, message=INVALID_LOGIN)
    return user


@router.get("/v2/auth")
async def issue_token(request: Request) -> JSONResponse:
    ctx = registry_context(request)
    auth = ctx.auth
    try:
        credentials = parse_authorization(request.headers.get("authorization"))
    except AuthorizationError as error:
        raise RegistryError(UNAUTHORIZED, {"reason": str(error)}) from None
    if isinstance(credentials, BearerCredentials):
        raise RegistryError(
            UNAUTHORIZED, {"reason": "the token endpoint takes Basic credentials or none"}
        )
    try:
        scopes = parse_scopes(request.query_params.getlist("scope"), server_hostname=auth.service)
    except ScopeError as error:
        raise RegistryError(
            SCOPE_INVALID,
            {"scope": error.scope, "reason": error.reason},
            message=str(error),
        ) from None
    user = await _login(request, credentials) if credentials is not None else None
    if user is None and not scopes:
        raise RegistryError(
            UNAUTHORIZED, {"reason": "an anonymous token request must name a scope"}
        )
    async with ctx.db.reader(fresh=True) as session:
        authorization = await authorize_scopes(session, user, scopes, auth.policy)
    grants = authorization.grants
    context = quay_context(
        user.username if user is not None else None,
        user_uuid=user.uuid if user is not None else None,
        robot=user.robot if user is not None else False,
        repositories=[grant.name for grant in grants if grant.type == REPOSITORY],
    )
    issued = auth.issuer.issue(user.username if user else None, grants, context=context)
    return JSONResponse(
        issued.response_body(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
    )
