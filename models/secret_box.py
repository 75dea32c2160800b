"""Layer: pure. Encrypting stored credentials (IdP connection tokens and client secrets) with
the deployment's key, ``IDSYNC_SECRET_KEY``, and rotating to a new key (no I/O).

Fernet (AES-128-CBC + HMAC-SHA256, authenticated, from ``cryptography``) under a
``MultiFernet``: the first key encrypts, every key (the current one and those listed in
``IDSYNC_SECRET_KEYS_OLD``) decrypts, so after a key change the old ciphertexts still read
until ``idsync secrets rotate`` re-encrypts them under the new key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

KEY_ENV: Final = "IDSYNC_SECRET_KEY"
OLD_KEYS_ENV: Final = "IDSYNC_SECRET_KEYS_OLD"
GENERATE_HINT: Final = "generate one with `idsync secrets generate-key`"


class SecretKeyError(RuntimeError):
    """The secret key is missing, malformed, or does not open a stored credential. The
    message is one operator line naming the cause (never the key or the secret)."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def _fernet(value: str, name: str) -> Fernet:
    try:
        return Fernet(value.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise SecretKeyError(
            f"{name} is not a valid key (32 url-safe base64-encoded bytes); {GENERATE_HINT}"
        ) from None


def split_keys(value: str | None) -> list[str]:
    """A comma (or whitespace) separated list of keys."""
    return [k for k in (value or "").replace(",", " ").split() if k]


class SecretBox:
    """Encrypts with the current key; decrypts with the current or any old key."""

    def __init__(self, current: str | None, old: Sequence[str] = ()) -> None:
        if not current or not current.strip():
            raise SecretKeyError(
                f"{KEY_ENV} is not set: IdP connection credentials are stored encrypted "
                f"with it; {GENERATE_HINT}"
            )
        keys = [_fernet(current, KEY_ENV)]
        keys += [_fernet(k, OLD_KEYS_ENV) for k in old]
        self._current = keys[0]
        self._all = MultiFernet(keys)

    @classmethod
    def from_env_values(cls, current: str | None, old: str | None) -> SecretBox:
        return cls(current, split_keys(old))

    def encrypt(self, secret: str) -> str:
        return self._current.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._all.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretKeyError(
                f"a stored credential does not open with {KEY_ENV} (or {OLD_KEYS_ENV}): "
                "the key changed without its predecessor listed in "
                f"{OLD_KEYS_ENV}"
            ) from None

    def is_current(self, token: str) -> bool:
        """Whether ``token`` is encrypted under the current key already."""
        try:
            self._current.decrypt(token.encode("ascii"))
        except InvalidToken:
            return False
        return True

    def rotate(self, token: str) -> str:
        """``token`` re-encrypted under the current key (raises when no key opens it)."""
        try:
            return self._all.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SecretKeyError(
                f"a stored credential opens with neither {KEY_ENV} nor {OLD_KEYS_ENV}: "
                f"list the key it was written with in {OLD_KEYS_ENV}"
            ) from None
