"""The Docker token flow end to end: /v2/auth, challenges, and the check on every /v2 route."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import time
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy import text

from tests.integration.registry.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    SERVICE,
    DockerTokenAuth,
    RegistryUnderTest,
    signing_key,
)
from wharf.cli.main import ADMIN_PASSWORD_ENV, ADMIN_PASSWORD_FILE, ensure_admin_user
from wharf.db.engine import Database
from wharf.db.migrate import upgrade_database
from wharf.registry import token_route
from wharf.registry.auth import SigningKey, TokenIssuer, hash_password, verify_password
from wharf.registry.auth.scopes import Grant

REPO = "library/app"
REALM = "http://registry/v2/auth"
DIGEST = "sha256:" + "a" * 64


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def access_of(token: str) -> list[dict[str, object]]:
    claims = jwt.decode(token, options={"verify_signature": False})
    access: list[dict[str, object]] = claims["access"]
    return access


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["code"]
    return code


async def push_blob(registry: RegistryUnderTest, data: bytes, repo: str = REPO) -> str:
    admin = await registry.client()
    response = await admin.post(f"/v2/{repo}/blobs/uploads/?digest={sha256(data)}", content=data)
    assert response.status_code == 201, response.text
    return sha256(data)


async def test_version_check_needs_a_token(registry: RegistryUnderTest) -> None:
    raw = await registry.client(login=None)
    response = await raw.get("/v2/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'Bearer realm="{REALM}",service="{SERVICE}"'
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert error_code(response) == "UNAUTHORIZED"
    anonymous = await registry.token(f"repository:{REPO}:pull", login=None)
    assert (await raw.get("/v2/", headers=bearer(anonymous))).status_code == 200
    admin = await registry.token()  # docker login: credentials, no scope
    assert access_of(admin) == []
    assert (await raw.get("/v2/", headers=bearer(admin))).status_code == 200


async def test_realm_follows_the_base_url(registry: RegistryUnderTest) -> None:
    raw = await registry.client(login=None)
    response = await raw.get("https://registry.example:5000/v2/")
    assert response.headers["WWW-Authenticate"].startswith(
        'Bearer realm="https://registry.example:5000/v2/auth",'
    )


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", f"/v2/{REPO}/blobs/{DIGEST}", "pull"),
        ("HEAD", f"/v2/{REPO}/blobs/{DIGEST}", "pull"),
        ("DELETE", f"/v2/{REPO}/blobs/{DIGEST}", "delete"),
        ("POST", f"/v2/{REPO}/blobs/uploads/", "pull,push"),
        ("POST", f"/v2/{REPO}/blobs/uploads/?digest={DIGEST}", "pull,push"),
        ("PATCH", f"/v2/{REPO}/blobs/uploads/some-id", "pull,push"),
        ("PUT", f"/v2/{REPO}/blobs/uploads/some-id?digest={DIGEST}", "pull,push"),
        ("GET", f"/v2/{REPO}/blobs/uploads/some-id", "pull"),
        ("DELETE", f"/v2/{REPO}/blobs/uploads/some-id", "pull,push"),
    ],
)
async def test_every_route_challenges_without_a_token(
    registry: RegistryUnderTest, method: str, path: str, scope: str
) -> None:
    raw = await registry.client(login=None)
    response = await raw.request(method, path, content=b"x" if method != "GET" else None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="{REALM}",service="{SERVICE}",scope="repository:{REPO}:{scope}"'
    )
    if method == "HEAD":
        assert response.content == b""
    else:
        assert error_code(response) == "UNAUTHORIZED"
    assert await registry.rows("select id from repository") == []


async def test_anonymous_pull_of_a_public_repository(registry: RegistryUnderTest) -> None:
    digest = await push_blob(registry, b"public layer")
    token = await registry.token(f"repository:{REPO}:pull", login=None)
    assert access_of(token) == [{"type": "repository", "name": REPO, "actions": ["pull"]}]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "(anonymous)"
    assert claims["aud"] == SERVICE
    raw = await registry.client(login=None)
    got = await raw.get(f"/v2/{REPO}/blobs/{digest}", headers=bearer(token))
    assert got.status_code == 200
    assert got.content == b"public layer"
    # The docker-like client does the same dance by itself.
    anonymous = await registry.client(login=None)
    anonymous.auth = DockerTokenAuth()
    assert (await anonymous.get(f"/v2/{REPO}/blobs/{digest}")).content == b"public layer"


async def test_anonymous_push_is_refused(registry: RegistryUnderTest) -> None:
    await push_blob(registry, b"existing")
    token = await registry.token(f"repository:{REPO}:pull,push", login=None)
    assert access_of(token) == [{"type": "repository", "name": REPO, "actions": ["pull"]}]
    raw = await registry.client(login=None)
    response = await raw.post(f"/v2/{REPO}/blobs/uploads/", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="{REALM}",service="{SERVICE}",'
        f'scope="repository:{REPO}:pull,push",error="insufficient_scope"'
    )
    assert error_code(response) == "UNAUTHORIZED"
    # A repository that does not exist: nothing granted, nothing created.
    missing = await registry.token("repository:new/app:pull,push", login=None)
    assert access_of(missing) == [{"type": "repository", "name": "new/app", "actions": []}]
    response = await raw.post("/v2/new/app/blobs/uploads/", headers=bearer(missing))
    assert response.status_code == 401
    assert await registry.rows("select name from repository") == [("app",)]
    assert await registry.rows("select id from blobupload") == []


async def test_private_repository_is_not_pulled_anonymously(registry: RegistryUnderTest) -> None:
    digest = await push_blob(registry, b"private layer")
    await registry.rows("update repository set visibility_id = 2")
    token = await registry.token(f"repository:{REPO}:pull", login=None)
    assert access_of(token) == [{"type": "repository", "name": REPO, "actions": []}]
    raw = await registry.client(login=None)
    response = await raw.get(f"/v2/{REPO}/blobs/{digest}", headers=bearer(token))
    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    admin = await registry.client()
    assert (await admin.get(f"/v2/{REPO}/blobs/{digest}")).content == b"private layer"


async def test_admin_token_pushes_and_pulls(registry: RegistryUnderTest) -> None:
    raw = await registry.client(login=None)
    response = await raw.get(
        "/v2/auth",
        params={"service": SERVICE, "scope": "repository:fresh/app:push,pull"},
        auth=(ADMIN, ADMIN_PASSWORD),
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 3600
    assert response.headers["Cache-Control"] == "no-store"
    token = body["token"]
    assert access_of(token) == [
        {"type": "repository", "name": "fresh/app", "actions": ["pull", "push"]}
    ]
    data = b"admin layer"
    pushed = await raw.post(
        f"/v2/fresh/app/blobs/uploads/?digest={sha256(data)}", content=data, headers=bearer(token)
    )
    assert pushed.status_code == 201, pushed.text
    got = await raw.get(f"/v2/fresh/app/blobs/{sha256(data)}", headers=bearer(token))
    assert got.content == data
    # Created on the first push, with its namespace, public in mirror mode.
    assert await registry.rows(
        "select u.username, r.name, r.visibility_id from repository r"
        ' join "user" u on u.id = r.namespace_user_id'
    ) == [("fresh", "app", 1)]


async def test_a_user_creates_repositories_in_their_own_namespace_only(
    registry: RegistryUnderTest,
) -> None:
    await registry.client()  # the schema
    await registry.add_user("alice", "alice-password")
    mine = await registry.token("repository:alice/app:pull,push", login=("alice", "alice-password"))
    assert access_of(mine)[0]["actions"] == ["pull", "push"]
    theirs = await registry.token(
        "repository:other/app:pull,push", login=("alice", "alice-password")
    )
    assert access_of(theirs)[0]["actions"] == []
    raw = await registry.client(login=None)
    data = b"alice layer"
    ok = await raw.post(
        f"/v2/alice/app/blobs/uploads/?digest={sha256(data)}", content=data, headers=bearer(mine)
    )
    assert ok.status_code == 201, ok.text
    refused = await raw.post("/v2/other/app/blobs/uploads/", headers=bearer(theirs))
    assert refused.status_code == 401
    assert await registry.rows("select name from repository") == [("app",)]
    assert await registry.rows("select username from \"user\" where username = 'other'") == []


@pytest.mark.parametrize(
    "login",
    [(ADMIN, "wrong"), ("nobody", "whatever"), ("library", "x")],
    ids=["wrong-password", "unknown-user", "organisation"],
)
async def test_bad_credentials_are_401(registry: RegistryUnderTest, login: tuple[str, str]) -> None:
    await push_blob(registry, b"x")  # creates the `library` organisation
    raw = await registry.client(login=None)
    response = await raw.get(
        "/v2/auth", params={"service": SERVICE, "scope": f"repository:{REPO}:pull"}, auth=login
    )
    assert response.status_code == 401
    assert error_code(response) == "UNAUTHORIZED"
    assert "token" not in response.text


async def test_a_token_for_one_repository_does_not_open_another(
    registry: RegistryUnderTest,
) -> None:
    digest = await push_blob(registry, b"layer of a")
    await push_blob(registry, b"layer of b", repo="other/b")
    token = await registry.token(f"repository:{REPO}:pull,push")
    raw = await registry.client(login=None)
    assert (await raw.get(f"/v2/{REPO}/blobs/{digest}", headers=bearer(token))).status_code == 200
    other = await raw.get(f"/v2/other/b/blobs/{sha256(b'layer of b')}", headers=bearer(token))
    assert other.status_code == 401
    assert other.headers["WWW-Authenticate"] == (
        f'Bearer realm="{REALM}",service="{SERVICE}",'
        'scope="repository:other/b:pull",error="insufficient_scope"'
    )
    # A mount needs pull on the source too: without it the blob is not linked.
    target = await registry.token("repository:other/b:pull,push")
    mount = await raw.post(
        f"/v2/other/b/blobs/uploads/?mount={digest}&from={REPO}", headers=bearer(target)
    )
    assert mount.status_code == 202
    got = await raw.get(f"/v2/other/b/blobs/{digest}", headers=bearer(target))
    assert got.status_code == 404


def _tampered(token: str) -> str:
    header, _payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["access"] = [{"type": "repository", "name": "other/b", "actions": ["pull", "push"]}]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    return f"{header}.{forged.decode()}.{signature}"


async def test_bad_tokens_are_401(registry: RegistryUnderTest) -> None:
    digest = await push_blob(registry, b"guarded")
    good = await registry.token(f"repository:{REPO}:pull")
    grants = [Grant("repository", REPO, ("pull",))]
    now = time.time()
    expired = TokenIssuer(
        signing_key(), issuer="quay", audience=SERVICE, clock=lambda: now - 7200
    ).issue(ADMIN, grants)
    foreign = TokenIssuer(SigningKey.generate(), issuer="quay", audience=SERVICE).issue(
        ADMIN, grants
    )
    elsewhere = TokenIssuer(signing_key(), issuer="quay", audience="other-registry").issue(
        ADMIN, grants
    )
    unsigned = jwt.encode(dict(expired.claims, exp=now + 600, iat=now, nbf=now), None, "none")
    raw = await registry.client(login=None)
    for token in (
        good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        _tampered(good),
        expired.token,
        foreign.token,
        elsewhere.token,
        unsigned,
        "not-a-jwt",
    ):
        response = await raw.get(f"/v2/{REPO}/blobs/{digest}", headers=bearer(token))
        assert response.status_code == 401, token
        assert response.headers["WWW-Authenticate"].endswith(',error="invalid_token"')
        assert error_code(response) == "UNAUTHORIZED"
    assert (await raw.get(f"/v2/{REPO}/blobs/{digest}", headers=bearer(good))).status_code == 200
    version = await raw.get("/v2/", headers=bearer(expired.token))
    assert version.status_code == 401
    assert version.headers["WWW-Authenticate"] == (
        f'Bearer realm="{REALM}",service="{SERVICE}",error="invalid_token"'
    )


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer   ",
        "Bearer a b",
        "Bearer é",
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Digest username=admin",
        "Bearer " + "a" * 20000,
        "\x7f",
    ],
)
async def test_malformed_authorization_is_401_never_500(
    registry: RegistryUnderTest, header: str
) -> None:
    await push_blob(registry, b"x")
    raw = await registry.client(login=None)
    headers = {"Authorization": header.encode("latin-1")}
    for method, path in (
        ("GET", "/v2/"),
        ("GET", f"/v2/{REPO}/blobs/{DIGEST}"),
        ("POST", f"/v2/{REPO}/blobs/uploads/"),
        ("GET", f"/v2/auth?service={SERVICE}&scope=repository:{REPO}:pull"),
    ):
        response = await raw.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        assert error_code(response) == "UNAUTHORIZED"


async def test_basic_credentials_on_a_registry_route_get_a_challenge(
    registry: RegistryUnderTest,
) -> None:
    raw = await registry.client(login=None)
    response = await raw.get(f"/v2/{REPO}/blobs/{DIGEST}", auth=(ADMIN, ADMIN_PASSWORD))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="{REALM}",service="{SERVICE}",scope="repository:{REPO}:pull"'
    )


@pytest.mark.parametrize(
    ("scope", "code"),
    [
        ("repository:Library/App:pull", "UNSUPPORTED"),
        ("repository:library/app:fly", "UNSUPPORTED"),
        ("repository:library/app", "UNSUPPORTED"),
        ("image:library/app:pull", "UNSUPPORTED"),
        ("repository:ubuntu:pull", "NAME_INVALID"),
    ],
)
async def test_bad_scopes_are_400(registry: RegistryUnderTest, scope: str, code: str) -> None:
    raw = await registry.client(login=None)
    for login in (None, (ADMIN, ADMIN_PASSWORD)):
        response = await raw.get(
            "/v2/auth", params={"service": SERVICE, "scope": scope}, auth=login
        )
        assert response.status_code == 400, response.text
        assert error_code(response) == code
    scope_error = response.json()["errors"][0]
    if code == "UNSUPPORTED":
        assert scope_error["message"].startswith("invalid scope")
        assert scope_error["detail"]["scope"] == scope


async def test_anonymous_token_without_scope_is_401(registry: RegistryUnderTest) -> None:
    raw = await registry.client(login=None)
    response = await raw.get("/v2/auth", params={"service": SERVICE})
    assert response.status_code == 401


async def test_the_scope_may_name_the_registry_host(registry: RegistryUnderTest) -> None:
    token = await registry.token(f"repository:{SERVICE}/{REPO}:pull")
    assert access_of(token)[0]["name"] == REPO


async def test_mirror_admin_bootstrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ADMIN_PASSWORD_ENV, raising=False)
    url = f"sqlite+aiosqlite:///{tmp_path / 'wharf.db'}"
    await upgrade_database(url)

    async def stored_hash() -> str:
        async with Database(url) as db, db.reader() as session:
            query = text('select password_hash, verified from "user"')
            rows = (await session.execute(query)).all()
        assert len(rows) == 1
        assert rows[0][1]
        value: str = rows[0][0]
        return value

    async with Database(url) as db:
        await ensure_admin_user(db, tmp_path, rounds=4)
    saved = tmp_path / ADMIN_PASSWORD_FILE
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    password = saved.read_text().strip()
    assert len(password) == 24
    assert capsys.readouterr().err.count(password) == 1
    assert verify_password(password, await stored_hash())

    async with Database(url) as db:  # second start: nothing printed, nothing changed
        await ensure_admin_user(db, tmp_path, rounds=4)
    assert password not in capsys.readouterr().err
    assert saved.read_text().strip() == password
    assert verify_password(password, await stored_hash())

    monkeypatch.setenv(ADMIN_PASSWORD_ENV, "from-the-environment")
    async with Database(url) as db:
        await ensure_admin_user(db, tmp_path, rounds=4)
    assert "from-the-environment" not in capsys.readouterr().err
    assert verify_password("from-the-environment", await stored_hash())


async def test_a_login_costs_one_bcrypt_check_per_minute_and_no_less_safety(
    registry: RegistryUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker and podman ask for several tokens per push with the same credentials."""
    await registry.client()  # the schema
    await registry.add_user("carol", "carol-password")
    checks: list[str] = []
    real_check = token_route.verify_password_async

    async def counted(password: str, password_hash: str | None) -> bool:
        checks.append(password)
        return await real_check(password, password_hash)

    monkeypatch.setattr(token_route, "verify_password_async", counted)
    raw = await registry.client(login=None)

    async def status(password: str) -> int:
        response = await raw.get(
            "/v2/auth",
            params={"service": SERVICE, "scope": "repository:carol/app:pull"},
            auth=("carol", password),
        )
        return response.status_code

    assert [await status("carol-password") for _ in range(3)] == [200, 200, 200]
    assert len(checks) == 1
    # A wrong password is checked by bcrypt every time: guessing gets no cheaper.
    assert [await status("guess") for _ in range(2)] == [401, 401]
    assert len(checks) == 3
    # A new password hash: the old password stops working at once.
    new_hash = hash_password("carol-new", rounds=4)
    await registry.rows(
        f"update \"user\" set password_hash = '{new_hash}' where username = 'carol'"
    )
    assert await status("carol-password") == 401
    assert await status("carol-new") == 200
    assert await status("carol-new") == 200
    assert len(checks) == 5
    # A disabled user is refused, remembered password or not, and the right password of a
    # disabled user is checked in full every time (nothing to learn from the timing).
    await registry.rows("update \"user\" set enabled = false where username = 'carol'")
    assert await status("carol-new") == 401
    await registry.rows(
        f"update \"user\" set password_hash = '{hash_password('dave', rounds=4)}' "
        "where username = 'carol'"
    )
    assert [await status("dave") for _ in range(2)] == [401, 401]
    assert len(checks) == 7
