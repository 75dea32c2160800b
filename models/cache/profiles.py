"""Layer: pure. Group-set profiles: compile a group set once, store it once, point users at it.

Pure (no I/O): turns ``models.access`` compiled entries into the stored form of a
group set (``layout.encode_set``) plus its content-addressed compiled blobs.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from models.access.compiled import Compiled, encode_compiled, group_set_key
from models.access.compiler import Compiler
from models.access.inputs import OrgConfig, User
from models.cache.layout import NO_ACCESS, decode_set, encode_set


def cid_of(encoded: str) -> str:
    """Content id of one encoded compiled entry (12 url-safe characters)."""
    digest = hashlib.blake2b(encoded.encode(), digest_size=9).digest()
    return base64.urlsafe_b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class SetPayload:
    """What the writer stores for one group set."""

    key: str
    value: str
    blobs: dict[str, str]
    """cid -> encoded compiled entry (only the ones this set uses)."""

    @property
    def entries(self) -> dict[str, str]:
        return decode_set(self.value)[1]


class ProfileBuilder:
    """Compiles group sets against one org config (memoized per group set and entry)."""

    def __init__(self, config: OrgConfig) -> None:
        self.config = config
        self.compiler = Compiler(config)
        self._encoded: dict[Compiled, tuple[str, str]] = {}
        self._sets: dict[frozenset[str], tuple[str, dict[str, str], dict[str, str]]] = {}

    def _encode(self, compiled: Compiled) -> tuple[str, str]:
        hit = self._encoded.get(compiled)
        if hit is None:
            text = encode_compiled(compiled)
            hit = (cid_of(text), text)
            self._encoded[compiled] = hit
        return hit

    def set_key(self, user: User | None) -> str:
        """The set key a user points at (``-`` for unknown, inactive or deleted users)."""
        if user is None or not user.can_act:
            return NO_ACCESS
        return group_set_key(user.group_ids)

    def build(self, groups: frozenset[str], revision: int) -> SetPayload:
        hit = self._sets.get(groups)
        if hit is None:
            entries: dict[str, str] = {}
            blobs: dict[str, str] = {}
            for ws, compiled in self.compiler.compile(groups).items():
                cid, text = self._encode(compiled)
                entries[ws] = cid
                blobs[cid] = text
            hit = (group_set_key(groups), entries, blobs)
            self._sets[groups] = hit
        key, entries, blobs = hit
        return SetPayload(key, encode_set(revision, entries), blobs)

    def for_users(
        self, users: Iterable[str], inputs: dict[str, User], revision: int
    ) -> tuple[dict[str, str], dict[str, SetPayload]]:
        """``({user id: set key}, {set key: payload})`` for ``users`` (missing = no access)."""
        pointers: dict[str, str] = {}
        sets: dict[str, SetPayload] = {}
        for uid in users:
            user = inputs.get(uid)
            key = self.set_key(user)
            pointers[uid] = key
            if user is not None and key != NO_ACCESS and key not in sets:
                sets[key] = self.build(user.group_ids, revision)
        return pointers, sets
