"""LoginCache: a success is remembered for a while, under exactly the same credentials."""

from __future__ import annotations

from wharf.registry.auth.login_cache import LoginCache

HASH = "$2b$12$" + "a" * 53
OTHER_HASH = "$2b$12$" + "b" * 53


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_remembered_login_is_verified_until_it_expires() -> None:
    clock = Clock()
    cache = LoginCache(ttl=60, clock=clock)
    assert not cache.verified("alice", "pw", HASH)
    cache.remember("alice", "pw", HASH)
    assert cache.verified("alice", "pw", HASH)
    clock.now += 59.9
    assert cache.verified("alice", "pw", HASH)
    clock.now += 0.2
    assert not cache.verified("alice", "pw", HASH)
    assert len(cache) == 0


def test_other_passwords_users_and_stored_hashes_miss() -> None:
    cache = LoginCache()
    cache.remember("alice", "pw", HASH)
    assert not cache.verified("alice", "pw2", HASH)
    assert not cache.verified("alice", "pw", OTHER_HASH)  # the password changed since
    assert not cache.verified("bob", "pw", HASH)
    assert not cache.verified("alice", "pw", None)
    # Field boundaries count: "a" + "b\0c" is not "a\0b" + "c".
    cache.remember("a", "b", "c")
    assert not cache.verified("a\0b", "", "c")


def test_no_password_is_kept() -> None:
    cache = LoginCache()
    cache.remember("alice", "correct horse battery staple", HASH)
    assert "correct horse" not in repr(vars(cache))


def test_the_oldest_entries_go_first_past_the_limit() -> None:
    cache = LoginCache(max_entries=2)
    for name in ("a", "b", "c"):
        cache.remember(name, "pw", HASH)
    assert not cache.verified("a", "pw", HASH)
    assert cache.verified("b", "pw", HASH)
    assert cache.verified("c", "pw", HASH)
    assert len(cache) == 2


def test_a_zero_ttl_turns_it_off() -> None:
    cache = LoginCache(ttl=0)
    cache.remember("alice", "pw", HASH)
    assert not cache.verified("alice", "pw", HASH)
    assert len(cache) == 0
