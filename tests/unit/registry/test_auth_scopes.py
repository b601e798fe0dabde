"""Scope parsing: the spec's grammar, Wharf's choices, and a precise error for every refusal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wharf.registry.auth.scopes import (
    MAX_SCOPES,
    Grant,
    ScopeError,
    parse_scope,
    parse_scopes,
)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("repository:ns/app:pull", Grant("repository", "ns/app", ("pull",))),
        ("repository:ns/app:push,pull", Grant("repository", "ns/app", ("pull", "push"))),
        ("repository:ns/app:pull,pull", Grant("repository", "ns/app", ("pull",))),
        ("repository:ns/a/b/c:delete", Grant("repository", "ns/a/b/c", ("delete",))),
        ("repository:ns/app:*", Grant("repository", "ns/app", ("*",))),
        ("repository:o.rg/a__b-c:*,push", Grant("repository", "o.rg/a__b-c", ("push", "*"))),
        ("repository(plugin):ns/app:pull", Grant("repository", "ns/app", ("pull",))),
        ("registry:catalog:*", Grant("registry", "catalog", ("*",))),
        ("repository:single:pull", Grant("repository", "single", ("pull",))),
    ],
)
def test_valid_scopes(scope: str, expected: Grant) -> None:
    assert parse_scope(scope) == expected


def test_the_server_hostname_is_removed_like_quay_does() -> None:
    grant = parse_scope(
        "repository:quay.example.com/ns/app:pull", server_hostname="quay.example.com"
    )
    assert grant.name == "ns/app"
    with_port = parse_scope(
        "repository:localhost:5000/ns/app:push", server_hostname="localhost:5000"
    )
    assert with_port == Grant("repository", "ns/app", ("push",))


@pytest.mark.parametrize(
    ("scope", "reason"),
    [
        ("", "expected <type>:<name>:<actions>"),
        ("repository", "expected <type>:<name>:<actions>"),
        ("repository:ns/app", "expected <type>:<name>:<actions>"),
        ("repository:ns/app:", "no actions"),
        ("repository:ns/app:pull,", "empty action"),
        ("repository:ns/app:pull,,push", "empty action"),
        ("repository:ns/app:write", "unknown action 'write'"),
        ("repository:ns/app:PULL", "unknown action 'PULL'"),
        ("repository::pull", "the repository name is empty"),
        ("repository:Ns/App:pull", "lowercase"),
        ("repository:ns//app:pull", "empty path component"),
        ("repository:/ns/app:pull", "empty path component"),
        ("repository:ns/app/:pull", "empty path component"),
        ("repository:ns/-app:pull", "each path component must match"),
        ("repository:ns/a___b:pull", "each path component must match"),
        ("repository:localhost:5000/ns/app:pull", "must not carry a host or a port"),
        ("repository:" + "a" * 256 + "/app:pull", "limited to 255 characters"),
        ("Repository:ns/app:pull", "the resource type must match"),
        ("repository(:ns/app:pull", "the resource type must match"),
        ("plugin:ns/app:pull", "unsupported resource type 'plugin'"),
        ("registry:other:*", "the only registry resource is 'catalog'"),
        ("registry:catalog:pull", "unknown action 'pull'"),
        ("repository:ns/app:pull\tpush", "whitespace or control characters"),
        ("repository:ns/app:pull\x00", "whitespace or control characters"),
        ("repository:" + "a/" * 600 + "b:pull", "longer than 1024 characters"),
    ],
)
def test_malformed_scopes_say_why(scope: str, reason: str) -> None:
    with pytest.raises(ScopeError) as info:
        parse_scope(scope)
    assert reason in info.value.reason
    assert str(info.value).startswith("invalid scope ")


def test_a_port_is_refused_even_with_another_server_hostname() -> None:
    with pytest.raises(ScopeError, match="host or a port"):
        parse_scope("repository:other:5000/ns/app:pull", server_hostname="localhost:5000")


def test_several_scope_values_and_space_separated_scopes_merge() -> None:
    grants = parse_scopes(
        [
            "repository:ns/app:pull",
            "",
            "repository:ns/other:push registry:catalog:*",
            "repository:ns/app:push  repository:ns/app:pull",
        ]
    )
    assert grants == (
        Grant("repository", "ns/app", ("pull", "push")),
        Grant("repository", "ns/other", ("push",)),
        Grant("registry", "catalog", ("*",)),
    )
    assert parse_scopes([]) == ()
    assert parse_scopes(["", " "]) == ()


def test_one_bad_scope_fails_the_whole_request() -> None:
    with pytest.raises(ScopeError, match="unknown action 'nope'"):
        parse_scopes(["repository:ns/app:pull", "repository:ns/app:nope"])


def test_too_many_resources_are_refused() -> None:
    values = [f"repository:ns/app{i}:pull" for i in range(MAX_SCOPES)]
    assert len(parse_scopes(values)) == MAX_SCOPES
    assert len(parse_scopes([*values, "repository:ns/app0:push"])) == MAX_SCOPES  # a merge
    with pytest.raises(ScopeError, match="more than 64 resources"):
        parse_scopes([*values, "repository:ns/one-more:pull"])


def test_grant_helpers() -> None:
    grant = Grant("repository", "ns/app", ("push", "pull"))
    assert grant.actions == ("pull", "push")
    assert grant.scope() == "repository:ns/app:pull,push"
    assert grant.claim() == {"type": "repository", "name": "ns/app", "actions": ["pull", "push"]}
    assert grant.allows("pull")
    assert not grant.allows("delete")
    assert Grant("repository", "ns/app", ("*",)).allows("delete")
    assert grant.intersect({"pull"}) == Grant("repository", "ns/app", ("pull",))
    assert grant.intersect(()) == Grant("repository", "ns/app", ())
    assert grant.intersect({"*"}) == grant
    star = Grant("repository", "ns/app", ("*", "pull"))
    assert star.intersect({"pull", "push", "delete"}).actions == ("pull",)  # `*` needs admin


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "repository", "name": "ns/app", "actions": ["pull", "push"]},
        {"type": "repository", "name": "ns/app", "actions": []},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ],
)
def test_access_entries_round_trip(entry: dict[str, object]) -> None:
    assert Grant.from_claim(entry).claim() == entry


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ([], "must be an object"),
        ({"type": "namespace", "name": "ns", "actions": []}, "access type"),
        ({"type": "repository", "name": "", "actions": []}, "non-empty string"),
        ({"type": "repository", "name": "ns/app", "actions": "pull"}, "list of strings"),
        ({"type": "repository", "name": "ns/app", "actions": [1]}, "list of strings"),
        ({"type": "repository", "name": "ns/app", "actions": ["own"]}, "unknown repository action"),
        ({"type": "registry", "name": "catalog", "actions": ["pull"]}, "unknown registry action"),
    ],
)
def test_malformed_access_entries(entry: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Grant.from_claim(entry)


@given(st.text(max_size=80))
def test_arbitrary_input_either_parses_or_raises_scope_error(text: str) -> None:
    try:
        grants = parse_scopes([text])
    except ScopeError:
        return
    for grant in grants:
        assert parse_scope(grant.scope()) == grant
