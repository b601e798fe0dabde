"""Registry tokens: Quay's claim shape, key ids and files, and every way verification fails."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from wharf.registry.auth.keys import (
    DEFAULT_KEY_FILENAME,
    SigningKey,
    SigningKeyError,
    key_id,
    load_or_create_signing_key,
    load_public_key,
    load_signing_key,
)
from wharf.registry.auth.scopes import Grant
from wharf.registry.auth.tokens import (
    ANONYMOUS_SUBJECT,
    TokenError,
    TokenIssuer,
    TokenVerifier,
    quay_context,
)

ISSUER = "quay"
SERVICE = "registry.example.com"
PULL_PUSH = Grant("repository", "ns/app", ("pull", "push"))


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return SigningKey.generate()


def issuer_for(key: SigningKey, *, at: float | None = None, **kwargs: Any) -> TokenIssuer:
    clock: Callable[[], float] = time.time if at is None else (lambda: at)
    return TokenIssuer(key, issuer=ISSUER, audience=SERVICE, clock=clock, **kwargs)


def verifier_for(*keys: SigningKey, **kwargs: Any) -> TokenVerifier:
    public = {k.kid: k.public_key for k in keys}
    return TokenVerifier(public, issuer=ISSUER, audience=SERVICE, **kwargs)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(signature)}"


def good_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": SERVICE,
        "exp": now + 3600,
        "nbf": now,
        "iat": now,
        "access": [PULL_PUSH.claim()],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def signed(key: SigningKey, claims: dict[str, Any], **header: Any) -> str:
    # Signed as raw JWS bytes, so that claims PyJWT would refuse to encode can be tested.
    headers = {"kid": key.kid, "typ": "JWT", **header}
    payload = json.dumps(claims).encode()
    return jwt.api_jws.encode(payload, key.private_key, algorithm="RS256", headers=headers)


# --- issuing and the round trip ---------------------------------------------------------------


def test_round_trip(key: SigningKey) -> None:
    context = quay_context("alice", user_uuid="u-1", repositories=["ns/app"])
    issued = issuer_for(key).issue("alice", [PULL_PUSH], context=context)
    verifier = TokenVerifier.for_signing_key(key, issuer=ISSUER, audience=SERVICE)
    verified = verifier.verify(issued.token)
    assert verified.subject == "alice"
    assert verified.access == (PULL_PUSH,)
    assert verified.key_id == key.kid
    assert verified.token_id == issued.claims["jti"]
    assert verified.context == context
    assert verified.expires_at - verified.issued_at == 3600
    assert verified.allows("repository", "ns/app", "push")
    assert not verified.allows("repository", "ns/app", "delete")
    assert not verified.allows("repository", "ns/other", "pull")
    assert verified.actions("repository", "ns/app") == {"pull", "push"}


def test_header_claims_and_response_body_have_quays_shape(key: SigningKey) -> None:
    at = 1_700_000_000.7
    issued = issuer_for(key, at=at).issue("alice", [PULL_PUSH, Grant("repository", "ns/x", ())])
    assert jwt.get_unverified_header(issued.token) == {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert list(claims) == ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"]
    assert claims["iss"] == ISSUER
    assert claims["aud"] == SERVICE
    assert claims["iat"] == claims["nbf"] == 1_700_000_000
    assert claims["exp"] == 1_700_003_600
    assert claims["access"] == [
        {"type": "repository", "name": "ns/app", "actions": ["pull", "push"]},
        {"type": "repository", "name": "ns/x", "actions": []},
    ]
    body = issued.response_body()
    assert body == {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": 3600,
        "issued_at": "2023-11-14T22:13:20Z",
    }
    assert "token=" not in repr(issued)


@pytest.mark.parametrize("sub", [None, ""])
def test_anonymous_tokens(key: SigningKey, sub: str | None) -> None:
    if sub is None:
        token = issuer_for(key).issue(None, [Grant("repository", "ns/app", ("pull",))]).token
        assert jwt.decode(token, options={"verify_signature": False})["sub"] == ANONYMOUS_SUBJECT
    else:
        token = signed(key, good_claims(sub=sub))  # the spec's empty subject
    assert verifier_for(key).verify(token).subject is None


def test_quay_context_shapes() -> None:
    assert quay_context(None) == {
        "version": 2,
        "entity_kind": "anonymous",
        "kind": "anonymous",
        "com.apostille.roots": {},
        "com.apostille.root": "$disabled",
    }
    assert quay_context("alice", user_uuid="u-1", repositories=["ns/a", "ns/b"]) == {
        "version": 2,
        "entity_kind": "user",
        "entity_reference": "u-1",
        "kind": "user",
        "user": "alice",
        "com.apostille.roots": {"ns/a": "$disabled", "ns/b": "$disabled"},
        "com.apostille.root": "$disabled",
    }
    robot = quay_context("ns+bot", robot=True)
    assert (robot["entity_kind"], robot["entity_reference"], robot["user"]) == (
        "robot",
        "ns+bot",
        "ns+bot",
    )


def test_rotation_several_keys_and_issuers(key: SigningKey, other_key: SigningKey) -> None:
    verifier = TokenVerifier(
        {key.kid: key.public_key, other_key.kid: other_key.public_key},
        issuer=["quay", "wharf"],
        audience=SERVICE,
    )
    for signer, name in ((key, "quay"), (other_key, "wharf")):
        token = TokenIssuer(signer, issuer=name, audience=SERVICE).issue("bob", []).token
        assert verifier.verify(token).key_id == signer.kid


def test_issuer_and_verifier_settings_are_checked(key: SigningKey) -> None:
    with pytest.raises(ValueError, match="below 60 s"):
        TokenIssuer(key, issuer=ISSUER, audience=SERVICE, lifetime_s=59)
    with pytest.raises(ValueError, match="issuer name and an audience"):
        TokenIssuer(key, issuer="", audience=SERVICE)
    with pytest.raises(ValueError, match="at least one public key"):
        TokenVerifier({}, issuer=ISSUER, audience=SERVICE)


# --- every verification failure ---------------------------------------------------------------


def test_alg_none_is_refused(key: SigningKey) -> None:
    token = compact({"alg": "none", "kid": key.kid, "typ": "JWT"}, good_claims())
    with pytest.raises(TokenError, match="algorithm 'none' is not allowed"):
        verifier_for(key).verify(token)


def test_hs256_signed_with_the_public_key_is_refused(key: SigningKey) -> None:
    # The classic confusion: HMAC keyed with the (public) PEM the verifier holds.
    header = {"alg": "HS256", "kid": key.kid, "typ": "JWT"}
    unsigned = compact(header, good_claims()).rsplit(".", 1)[0]
    mac = hmac.new(key.public_pem(), unsigned.encode("ascii"), hashlib.sha256).digest()
    with pytest.raises(TokenError, match="algorithm 'HS256' is not allowed: only RS256"):
        verifier_for(key).verify(f"{unsigned}.{b64(mac)}")


def test_a_missing_alg_is_refused(key: SigningKey) -> None:
    token = compact({"kid": key.kid}, good_claims(), b"sig")
    with pytest.raises(TokenError, match=r"no algorithm \(alg\)"):
        verifier_for(key).verify(token)


def test_other_rsa_algorithms_are_refused(key: SigningKey) -> None:
    token = jwt.encode(good_claims(), key.private_key, algorithm="RS512", headers={"kid": key.kid})
    with pytest.raises(TokenError, match="'RS512' is not allowed"):
        verifier_for(key).verify(token)
    ps = jwt.encode(good_claims(), key.private_key, algorithm="PS256", headers={"kid": key.kid})
    with pytest.raises(TokenError, match="'PS256' is not allowed"):
        verifier_for(key).verify(ps)


def test_wrong_audience(key: SigningKey) -> None:
    token = signed(key, good_claims(aud="other.example.com"))
    with pytest.raises(TokenError, match="another service"):
        verifier_for(key).verify(token)


def test_wrong_issuer(key: SigningKey) -> None:
    token = signed(key, good_claims(iss="evil"))
    with pytest.raises(TokenError, match="untrusted issuer"):
        verifier_for(key).verify(token)


def test_expired_and_the_leeway(key: SigningKey) -> None:
    now = time.time()
    verifier = verifier_for(key, clock=lambda: now)
    just_within = issuer_for(key, at=now - 3600 - 29).issue("alice", []).token
    assert verifier.verify(just_within).subject == "alice"  # 30 s of clock skew allowed
    expired = issuer_for(key, at=now - 3600 - 31).issue("alice", []).token
    with pytest.raises(TokenError, match="has expired"):
        verifier.verify(expired)


def test_not_yet_valid(key: SigningKey) -> None:
    now = time.time()
    verifier = verifier_for(key, clock=lambda: now)
    assert verifier.verify(issuer_for(key, at=now + 29).issue("a", []).token)
    with pytest.raises(TokenError, match=r"not valid yet \(nbf\)"):
        verifier.verify(issuer_for(key, at=now + 31).issue("a", []).token)
    issued_later = signed(key, good_claims(iat=int(now) + 120))
    with pytest.raises(TokenError, match=r"issued in the future \(iat\)"):
        verifier.verify(issued_later)


def test_too_long_a_lifetime(key: SigningKey) -> None:
    long_lived = issuer_for(key, lifetime_s=3661).issue("alice", []).token
    with pytest.raises(TokenError, match="lives longer than 3660 s"):
        verifier_for(key).verify(long_lived)
    assert verifier_for(key, max_lifetime_s=7200).verify(long_lived).subject == "alice"


def test_tampered_signature_and_payload(key: SigningKey) -> None:
    token = issuer_for(key).issue("alice", [Grant("repository", "ns/app", ("pull",))]).token
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01
    with pytest.raises(TokenError, match="signature does not verify"):
        verifier_for(key).verify(f"{header}.{payload}.{b64(bytes(raw))}")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["access"][0]["actions"] = ["pull", "push", "*"]
    forged = b64(json.dumps(claims).encode())
    with pytest.raises(TokenError, match="signature does not verify"):
        verifier_for(key).verify(f"{header}.{forged}.{signature}")


def test_unknown_or_missing_kid(key: SigningKey, other_key: SigningKey) -> None:
    stranger = issuer_for(other_key).issue("alice", []).token
    with pytest.raises(TokenError, match="unknown key"):
        verifier_for(key).verify(stranger)
    # Signed by our key but announcing the other key's id: the lookup picks the wrong key.
    mislabelled = jwt.encode(
        good_claims(), key.private_key, algorithm="RS256", headers={"kid": other_key.kid}
    )
    with pytest.raises(TokenError, match="signature does not verify"):
        verifier_for(key, other_key).verify(mislabelled)
    no_kid = jwt.encode(good_claims(), key.private_key, algorithm="RS256")
    with pytest.raises(TokenError, match="no key id"):
        verifier_for(key).verify(no_kid)


def test_embedded_keys_are_not_trusted(key: SigningKey, other_key: SigningKey) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(other_key.public_key))
    token = jwt.encode(
        good_claims(), other_key.private_key, algorithm="RS256", headers={"jwk": jwk}
    )
    with pytest.raises(TokenError, match="no key id"):
        verifier_for(key).verify(token)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        (good_claims(sub=None), "has no sub claim"),
        (good_claims(exp=None), "has no exp claim"),
        (good_claims(nbf=None), "has no nbf claim"),
        (good_claims(iat=None), "has no iat claim"),
        (good_claims(aud=None), "has no aud claim"),
        (good_claims(exp="tomorrow"), "exp claim is not a number"),
        (good_claims(iat=True), "iat claim is not a number"),
        (good_claims(nbf=float("inf")), "nbf claim is not a number"),
        (good_claims(iss=["quay"]), "untrusted issuer"),
        (good_claims(sub=7), "sub claim is not a string"),
        (good_claims(access={"type": "repository"}), "access claim is not a list"),
        (good_claims(access=[{"type": "repository", "name": "a/b"}]), "malformed access claim"),
        (good_claims(context=["x"]), "context claim is not an object"),
    ],
)
def test_malformed_claims(key: SigningKey, claims: dict[str, Any], message: str) -> None:
    with pytest.raises(TokenError, match=message):
        verifier_for(key).verify(signed(key, claims))


def test_tokens_without_access_or_jti_like_quays_verify(key: SigningKey) -> None:
    claims = good_claims(access=None)
    verified = verifier_for(key).verify(signed(key, claims))
    assert (verified.access, verified.token_id, verified.context) == ((), None, {})


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "not a signed JWT"),
        ("abc", "not a signed JWT"),
        ("a.b.c.d", "not a signed JWT"),
        ("a.b.c", "malformed token header"),
        ("x" * 20_000, "longer than"),
    ],
)
def test_garbage(key: SigningKey, token: str, message: str) -> None:
    with pytest.raises(TokenError, match=message):
        verifier_for(key).verify(token)


def test_crit_headers_are_refused(key: SigningKey) -> None:
    token = signed(key, good_claims(), crit=["exp"])  # PyJWT supports no critical extension
    with pytest.raises(TokenError, match="malformed token header"):
        verifier_for(key).verify(token)


# --- keys ---------------------------------------------------------------------------------------


RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKR"
    "XjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAt"
    "aSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPks"
    "INHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)


def test_key_id_is_the_rfc_7638_thumbprint() -> None:
    n = int.from_bytes(base64.urlsafe_b64decode(RFC7638_N + "=="), "big")
    public = rsa.RSAPublicNumbers(65537, n).public_key()
    assert key_id(public) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"  # RFC 7638, 3.1


def test_pem_round_trip_and_kid_override(key: SigningKey) -> None:
    again = SigningKey.from_pem(key.private_pem())
    assert again.kid == key.kid
    pkcs1 = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert SigningKey.from_pem(pkcs1).kid == key.kid
    assert SigningKey.from_pem(pkcs1, kid="quay-service-key").kid == "quay-service-key"
    assert load_public_key(key.public_pem()).public_numbers() == key.public_key.public_numbers()
    assert "private_key" not in repr(key)


def test_public_key_from_a_certificate(key: SigningKey) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wharf")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key)
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key.private_key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    assert key_id(load_public_key(pem)) == key.kid


def test_unusable_keys_are_refused() -> None:
    with pytest.raises(SigningKeyError, match="not an unencrypted PEM private key"):
        SigningKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(SigningKeyError, match="1024 bits"):
        SigningKey(small)
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(SigningKeyError, match="must be RSA"):
        SigningKey.from_pem(ec_pem)
    with pytest.raises(SigningKeyError, match="not a PEM public key"):
        load_public_key(b"garbage")


def test_generated_key_is_saved_0600_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "data" / "keys" / DEFAULT_KEY_FILENAME
    created = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert created.private_key.key_size == 2048
    assert load_or_create_signing_key(path).kid == created.kid
    assert [p.name for p in path.parent.iterdir()] == [DEFAULT_KEY_FILENAME]  # no temp files


def test_a_key_saved_first_by_another_process_wins(
    tmp_path: Path, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / DEFAULT_KEY_FILENAME
    real_link = os.link

    def racing_link(source: Any, target: Any) -> None:
        path.write_bytes(key.private_pem())  # the other process got there first
        real_link(source, target)

    monkeypatch.setattr(os, "link", racing_link)
    assert load_or_create_signing_key(path).kid == key.kid
    assert [p.name for p in tmp_path.iterdir()] == [DEFAULT_KEY_FILENAME]


def test_loading_warns_about_readable_keys(
    tmp_path: Path, key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_pem())
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="wharf.registry.auth.keys"):
        assert load_signing_key(path).kid == key.kid
    assert "readable by other users" in caplog.text
    assert "PRIVATE" not in caplog.text
    with pytest.raises(SigningKeyError, match="cannot read the token signing key"):
        load_signing_key(tmp_path / "missing.pem")
