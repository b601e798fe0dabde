"""`WWW-Authenticate` challenges and `Authorization` header parsing."""

from __future__ import annotations

import base64

import pytest

from wharf.registry.auth.challenge import (
    READ_ACTIONS,
    WRITE_ACTIONS,
    AuthorizationError,
    BasicCredentials,
    BearerCredentials,
    bearer_challenge,
    parse_authorization,
    registry_challenge,
    repository_challenge,
)
from wharf.registry.auth.scopes import Grant

REALM = "https://registry.example.com/v2/auth"
SERVICE = "registry.example.com"


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode("ascii")


def test_v2_challenge_is_quays_exact_string() -> None:
    assert registry_challenge(REALM, SERVICE) == (
        'Bearer realm="https://registry.example.com/v2/auth",service="registry.example.com"'
    )


def test_repository_challenges_for_reads_and_writes() -> None:
    assert repository_challenge(REALM, SERVICE, "ns/app", READ_ACTIONS) == (
        f'Bearer realm="{REALM}",service="{SERVICE}",scope="repository:ns/app:pull"'
    )
    assert repository_challenge(REALM, SERVICE, "ns/a/b", WRITE_ACTIONS) == (
        f'Bearer realm="{REALM}",service="{SERVICE}",scope="repository:ns/a/b:pull,push"'
    )


def test_insufficient_scope_and_invalid_token() -> None:
    value = repository_challenge(
        REALM, SERVICE, "ns/app", ["push", "pull"], error="insufficient_scope"
    )
    assert value == (
        f'Bearer realm="{REALM}",service="{SERVICE}",scope="repository:ns/app:pull,push",'
        'error="insufficient_scope"'
    )
    assert registry_challenge(REALM, SERVICE) + ',error="invalid_token"' == bearer_challenge(
        REALM, SERVICE, error="invalid_token"
    )


def test_several_scopes_share_one_parameter() -> None:
    value = bearer_challenge(
        REALM,
        SERVICE,
        [Grant("repository", "ns/a", ("pull",)), "repository:ns/b:pull", ""],
    )
    assert value.endswith(',scope="repository:ns/a:pull repository:ns/b:pull"')


def test_parameters_are_quoted_strings() -> None:
    value = bearer_challenge('https://h/v2/auth?x="y"', "back\\slash")
    assert value == 'Bearer realm="https://h/v2/auth?x=\\"y\\"",service="back\\\\slash"'
    with pytest.raises(ValueError, match="control characters"):
        bearer_challenge("https://h/\r\nSet-Cookie: a=b", SERVICE)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic(b"alice:s3cret"), BasicCredentials("alice", "s3cret")),
        (basic(b"alice:with:colons"), BasicCredentials("alice", "with:colons")),
        (basic(b"ns+robot:TOKEN"), BasicCredentials("ns+robot", "TOKEN")),
        (basic("jürgen:pässwörd".encode()), BasicCredentials("jürgen", "pässwörd")),
        ("basic " + basic(b"a:b")[6:], BasicCredentials("a", "b")),
        ("BASIC   " + basic(b"a:b")[6:] + "  ", BasicCredentials("a", "b")),
        ("Bearer abc.def.ghi", BearerCredentials("abc.def.ghi")),
        ("bearer eyJ0-_x.y+/z==", BearerCredentials("eyJ0-_x.y+/z==")),
        (None, None),
        ("", None),
        ("   ", None),
    ],
)
def test_valid_headers(header: str | None, expected: object) -> None:
    assert parse_authorization(header) == expected


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Basic", "Basic authorization without credentials"),
        ("Basic    ", "Basic authorization without credentials"),
        ("Basic a b", "one base64 string"),
        ("Basic not*base64", "one base64 string"),
        ("Basic YWxpY2U6c2VjcmV0x", "not valid base64"),  # bad padding
        ("Basic YWxp-2U6c2VjcmV0", "not valid base64"),  # urlsafe alphabet
        ("Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), "not UTF-8"),
        (basic(b"alice"), "no ':' between username and password"),
        (basic(b":s3cret"), "empty username"),
        (basic(b"alice:"), "empty password"),
        (basic(b"al\x00ice:pw"), "control characters"),
        (basic(b"alice:pw\n"), "control characters"),
        ("Bearer", "Bearer authorization without a token"),
        ("Bearer a b", "token68"),
        ("Bearer a=b", "token68"),
        ("Bearer tok\u00e9n", "token68"),
        ("Digest username=alice", "unsupported authorization scheme 'Digest'"),
        ("Token abc", "unsupported authorization scheme 'Token'"),
        ("(Basic) abc", "does not start with a scheme"),
        ("Bearer " + "a" * 20_000, "longer than"),
    ],
)
def test_malformed_headers_say_why(header: str, reason: str) -> None:
    with pytest.raises(AuthorizationError, match=reason):
        parse_authorization(header)


def test_errors_and_reprs_never_show_secrets() -> None:
    secret = "hunter2-very-secret"
    for header in (basic(f":{secret}".encode()), basic(f"alice:{secret}\x01".encode())):
        with pytest.raises(AuthorizationError) as info:
            parse_authorization(header)
        assert secret not in str(info.value)
    credentials = parse_authorization(basic(f"alice:{secret}".encode()))
    assert secret not in repr(credentials)
    bearer = parse_authorization(f"Bearer {secret}")
    assert secret not in repr(bearer)
