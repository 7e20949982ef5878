"""Sealing secret values: AES-GCM under a keyring, the row's identity bound in."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from core.sealing import Keyring, KeyringError, TamperedSecret, UnknownKey, generate_line

TOKEN = "3f2c8f5e-0000-4000-8000-000000000001"
OTHER = "3f2c8f5e-0000-4000-8000-000000000002"


def test_a_sealed_value_opens_and_is_not_in_the_ciphertext() -> None:
    ring = Keyring.parse(generate_line("k1"))
    sealed = ring.seal(TOKEN, "db-password", b"correct horse battery staple")
    assert sealed.key_id == "k1" and len(sealed.nonce) == 12
    assert b"horse" not in sealed.ciphertext
    assert ring.open(TOKEN, "db-password", sealed) == b"correct horse battery staple"
    # A fresh nonce per seal: the same value never seals the same way twice.
    assert ring.seal(TOKEN, "a", b"x").nonce != ring.seal(TOKEN, "a", b"x").nonce


def test_a_ciphertext_moved_to_another_row_or_token_does_not_open() -> None:
    ring = Keyring.parse(generate_line("k1"))
    sealed = ring.seal(TOKEN, "a", b"value")
    with pytest.raises(TamperedSecret):
        ring.open(OTHER, "a", sealed)
    with pytest.raises(TamperedSecret):
        ring.open(TOKEN, "b", sealed)
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(TamperedSecret):
        ring.open(TOKEN, "a", replace(sealed, ciphertext=flipped))


def test_rotation_the_last_key_seals_and_old_rows_still_open() -> None:
    k1, k2 = generate_line("k1"), generate_line("k2")
    old = Keyring.parse(k1)
    before = old.seal(TOKEN, "a", b"old value")
    rotated = Keyring.parse(f"{k1}\n\n# added at the rotation\n{k2}\n")
    assert rotated.current == "k2" and rotated.key_ids == ("k1", "k2")
    assert rotated.open(TOKEN, "a", before) == b"old value"
    after = rotated.seal(TOKEN, "a", b"new value")
    assert after.key_id == "k2"
    with pytest.raises(UnknownKey, match="'k2'"):
        old.open(TOKEN, "a", after)


KEY = base64.b64encode(b"x" * 32).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no key"),
        ("# only a comment", "holds no key"),
        ("k1", "line 1: expected '<key id> <base64 key>'"),
        (f"-k {KEY}", "key id must be"),
        ("k1 !!!notbase64", "not base64"),
        ("k1 " + base64.b64encode(b"short").decode(), "5 bytes, not 32"),
        (f"k1 {KEY}\nk1 {KEY}", "line 2: key id 'k1' appears twice"),
    ],
)
def test_a_malformed_keyring_is_refused_with_its_line(text: str, message: str) -> None:
    with pytest.raises(KeyringError, match=message):
        Keyring.parse(text)


def test_a_bad_key_id_is_not_generated() -> None:
    with pytest.raises(KeyringError):
        generate_line("no spaces allowed")
