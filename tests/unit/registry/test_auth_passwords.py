"""Passwords against Quay's bcrypt `user.password_hash` values."""

from __future__ import annotations

import logging
import threading

import bcrypt
import pytest

from wharf.registry.auth import passwords
from wharf.registry.auth.passwords import (
    PasswordError,
    hash_password,
    is_bcrypt_hash,
    verify_password,
    verify_password_async,
)

# crypt_blowfish's published test vector (password "U*U"), in Quay's older `$2a$` form.
VECTOR_2A = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
# Made with bcrypt.hashpw(b"correct horse", gensalt(4)): the `$2b$` form Quay writes today.
CORRECT_HORSE_2B = "$2b$04$r7rSkuYMtAj6qmaq0ZCEQOMperMzCo2t/bkFcGCWEQ78It9oscxMm"
UNICODE_2B = "$2b$04$WGYFVR89Hvy4y1XM901C0ejC5Bkhpl0KbASX/sN88E7Vrj1kIbRha"  # "pässwörd"
SEVENTY_TWO_X = "$2b$04$Y9j3dMQVopiwz00taEbr1.3QZXvdL8M6OQkXbmIB0VYbqAiHuBaRW"  # "x" * 72


@pytest.mark.parametrize(
    ("password", "stored"),
    [
        ("U*U", VECTOR_2A),
        ("correct horse", CORRECT_HORSE_2B),
        ("correct horse", "$2y$" + CORRECT_HORSE_2B[4:]),
        ("pässwörd", UNICODE_2B),
    ],
)
def test_real_hashes_verify(password: str, stored: str) -> None:
    assert verify_password(password, stored)


@pytest.mark.parametrize(
    ("password", "stored"),
    [
        ("U*V", VECTOR_2A),
        ("correct horse ", CORRECT_HORSE_2B),
        ("Correct horse", CORRECT_HORSE_2B),
        ("passwörd", UNICODE_2B),
    ],
)
def test_wrong_passwords_do_not(password: str, stored: str) -> None:
    assert not verify_password(password, stored)


def test_long_passwords_are_truncated_like_quays_bcrypt_did() -> None:
    assert verify_password("x" * 72, SEVENTY_TWO_X)
    assert verify_password("x" * 72 + "ignored", SEVENTY_TWO_X)
    with pytest.raises(PasswordError, match="73 bytes long; bcrypt reads at most 72"):
        hash_password("x" * 73)
    with pytest.raises(PasswordError, match="bytes long"):
        hash_password("é" * 37)  # 74 bytes in UTF-8


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plaintext",
        "$2a$05$short",
        "$2x$" + CORRECT_HORSE_2B[4:],  # crypt_blowfish's buggy-mode prefix
        "$2b$03$" + CORRECT_HORSE_2B[7:],  # cost below 4
        "$2b$04$" + "!" * 53,
        CORRECT_HORSE_2B + "x",
        "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
    ],
)
def test_malformed_hashes_refuse_the_login_and_log_no_secret(
    stored: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert not is_bcrypt_hash(stored)
    with caplog.at_level(logging.WARNING, logger="wharf.registry.auth.passwords"):
        assert not verify_password("correct horse", stored)
    assert "not a bcrypt hash" in caplog.text
    assert "correct horse" not in caplog.text
    if stored:
        assert stored not in caplog.text


def test_empty_passwords_are_refused() -> None:
    empty_vector = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy"  # hash of ""
    assert not verify_password("", empty_vector)
    with pytest.raises(PasswordError, match="empty"):
        hash_password("")


def test_no_hash_still_costs_a_bcrypt_check(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[bytes] = []
    real = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(passwords, "_dummy_hash", lambda: CORRECT_HORSE_2B.encode())
    monkeypatch.setattr(bcrypt, "checkpw", spy)
    assert not verify_password("correct horse", None)  # even the dummy's own password fails
    assert checked == [CORRECT_HORSE_2B.encode()]


def test_hash_password_round_trip() -> None:
    stored = hash_password("s3cret: with spaces", rounds=4)
    assert stored.startswith("$2b$04$")
    assert is_bcrypt_hash(stored)
    assert verify_password("s3cret: with spaces", stored)
    assert not verify_password("s3cret", stored)
    assert hash_password("s3cret", rounds=4) != hash_password("s3cret", rounds=4)  # salted
    with pytest.raises(PasswordError, match="rounds"):
        hash_password("s3cret", rounds=3)


async def test_async_verification_runs_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[int] = []
    real = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        threads.append(threading.get_ident())
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    assert await verify_password_async("correct horse", CORRECT_HORSE_2B)
    assert not await verify_password_async("wrong", CORRECT_HORSE_2B)
    assert threads
    assert threading.get_ident() not in threads
