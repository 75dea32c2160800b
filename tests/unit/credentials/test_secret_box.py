"""Credential encryption (models.secret_box): round trip, one operator line for a missing or
malformed key, old keys still decrypt, rotation re-encrypts under the current key."""

from __future__ import annotations

import pytest

from models.secret_box import SecretBox, SecretKeyError, generate_key, split_keys


def test_round_trip_and_the_ciphertext_hides_the_secret() -> None:
    box = SecretBox(generate_key())
    token = box.encrypt("okta-s3cret")
    assert "okta-s3cret" not in token and box.decrypt(token) == "okta-s3cret"
    assert box.encrypt("okta-s3cret") != token  # random IV: equal secrets look different


def test_missing_and_malformed_keys_are_one_line_naming_the_variable() -> None:
    with pytest.raises(SecretKeyError, match=r"^IDSYNC_SECRET_KEY is not set: .*generate-key"):
        SecretBox(None)
    with pytest.raises(SecretKeyError, match=r"^IDSYNC_SECRET_KEY is not a valid key"):
        SecretBox("not-a-fernet-key")
    with pytest.raises(SecretKeyError, match=r"^IDSYNC_SECRET_KEYS_OLD is not a valid key"):
        SecretBox(generate_key(), ["short"])


def test_a_key_change_needs_the_old_key_until_rotation() -> None:
    old, new = generate_key(), generate_key()
    token = SecretBox(old).encrypt("graph-secret")
    with pytest.raises(SecretKeyError, match="IDSYNC_SECRET_KEYS_OLD") as err:
        SecretBox(new).decrypt(token)
    assert "graph-secret" not in str(err.value) and old not in str(err.value)
    box = SecretBox.from_env_values(new, f" {generate_key()}, {old} ")
    assert box.decrypt(token) == "graph-secret" and not box.is_current(token)
    rotated = box.rotate(token)
    assert box.is_current(rotated) and SecretBox(new).decrypt(rotated) == "graph-secret"
    with pytest.raises(SecretKeyError, match="opens with neither"):
        SecretBox(generate_key()).rotate(token)


def test_split_keys_takes_commas_and_spaces() -> None:
    assert split_keys(" a, b  c,") == ["a", "b", "c"] and split_keys(None) == []
