"""Bearer tokens on the event loop: who a SCIM token speaks for, when finding out needs
no write (the lanes of `scim.keyed_lane` and `scim.create_lane`).

The identity comes from the per-process cache of verified tokens
(`models.credential_cache`), or from one prebuilt lookup on the event-loop pool, the
hash compared in constant time exactly as the thread path's `verify_scim_token` does.
None sends the request to the thread path, which answers it fully: an unknown or
revoked token gets its 401 there, and a token whose once-a-minute `last_used_at` write
is due gets it written there.
"""

from __future__ import annotations

from sqlalchemy.engine import Dialect

from models.credential_cache import VerifiedCache
from models.db.async_pg import AsyncPg, prepare
from models.db.tokens import (
    SCIM_TOKEN_LOOKUP,
    TokenIdentity,
    scim_token_identity,
    scim_token_lookup_params,
)


class LaneAuth:
    def __init__(self, pg: AsyncPg, dialect: Dialect, tokens: VerifiedCache[TokenIdentity]) -> None:
        self.pg = pg
        self.tokens = tokens
        self._lookup = prepare(SCIM_TOKEN_LOOKUP, dialect)

    async def identity(self, presented: str) -> TokenIdentity | None:
        """The token's identity, or None: the thread path takes the request."""
        ident = self.tokens.get(presented)
        if ident is not None and not ident.use_is_stale():
            return ident
        params = scim_token_lookup_params(presented)
        if params is None:
            return None
        rows = await self.pg.fetch(self._lookup, params)
        ident = scim_token_identity(rows[0] if rows else None, presented)
        if ident is None or ident.use_is_stale():
            return None
        self.tokens.put(presented, ident)
        return ident
