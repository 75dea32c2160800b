"""The in-process memory of verified bearer secrets (models.credential_cache)."""

from __future__ import annotations

import pytest

from models.credential_cache import VerifiedCache
from models.credentials import hash_secret


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_remembers_a_verified_secret_for_the_window_only() -> None:
    clock = Clock()
    cache: VerifiedCache[str] = VerifiedCache(2.0, clock=clock)
    assert cache.get("secret") is None
    cache.put("secret", "org-a")
    assert cache.get("secret") == "org-a"
    clock.now += 1.999
    assert cache.get("secret") == "org-a"
    clock.now += 0.001
    assert cache.get("secret") is None
    assert len(cache) == 0  # the expired entry is gone, not just hidden


def test_a_zero_window_remembers_nothing() -> None:
    cache: VerifiedCache[str] = VerifiedCache(0)
    assert not cache.enabled
    cache.put("secret", "org-a")
    assert cache.get("secret") is None
    assert len(cache) == 0


def test_keys_are_digests_never_the_secret() -> None:
    cache: VerifiedCache[str] = VerifiedCache(5.0)
    cache.put("idsync_scim_plaintext", "org-a")
    keys = list(cache._entries)
    assert keys == [hash_secret("idsync_scim_plaintext")]
    assert "idsync_scim_plaintext" not in repr(cache._entries)


def test_each_secret_resolves_to_its_own_identity() -> None:
    cache: VerifiedCache[str] = VerifiedCache(5.0)
    cache.put("token-a", "org-a")
    cache.put("token-b", "org-b")
    assert cache.get("token-a") == "org-a"
    assert cache.get("token-b") == "org-b"
    assert cache.get("token-c") is None


def test_the_oldest_entry_goes_first_when_full() -> None:
    cache: VerifiedCache[int] = VerifiedCache(60.0, max_entries=3)
    for i in range(5):
        cache.put(f"t{i}", i)
    assert len(cache) == 3
    assert [cache.get(f"t{i}") for i in range(5)] == [None, None, 2, 3, 4]


def test_forget_all_empties_it() -> None:
    cache: VerifiedCache[str] = VerifiedCache(60.0)
    cache.put("a", "x")
    cache.forget_all()
    assert cache.get("a") is None


@pytest.mark.parametrize(("ttl", "entries"), [(-1.0, 10), (1.0, 0)])
def test_bad_bounds_are_refused(ttl: float, entries: int) -> None:
    with pytest.raises(ValueError):
        VerifiedCache(ttl, max_entries=entries)
