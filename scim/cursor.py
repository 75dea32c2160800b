"""Layer: store. Cursor pagination (RFC 9865): the opaque `cursor` / `nextCursor` values.

A cursor is the position after the last resource of a page in the default order
(`meta.created`, then `id`), plus fingerprints of what it was issued for: the resource
type, the organization and the filter. The next page is then a keyset read
(`(created, id) > position`) through the `(org_id, created_at, id …)` index: as cheap at
the millionth resource as at the first, where `startIndex` makes PostgreSQL walk and
discard every row before the page.

Cursors do not expire (ServiceProviderConfig advertises no `cursorTimeout`): a position
stays meaningful however long a client waits; resources created meanwhile appear on
later pages, deleted ones are skipped. A cursor is not a secret and grants nothing: the
bearer token decides the organization, and a cursor from another organization, resource
type or filter is refused (400 `invalidCursor`) rather than silently reinterpreted.
Encoded as unpadded base64url, so only RFC 3986 unreserved characters appear.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from models import json_text
from models.db.base import storable
from scim.errors import InvalidCursor

VERSION = 1


@dataclass(frozen=True)
class Position:
    """After the resource created at `created` with id `id` (the default order)."""

    created: datetime
    id: str


def _fingerprint(resource_type: str, org_id: str, flt: str | None) -> str:
    text = "\x1f".join((resource_type, org_id, flt or ""))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def encode(position: Position, *, resource_type: str, org_id: str, flt: str | None) -> str:
    doc = {
        "v": VERSION,
        "c": position.created.isoformat(),
        "i": position.id,
        "q": _fingerprint(resource_type, org_id, flt),
    }
    raw = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(cursor: str, *, resource_type: str, org_id: str, flt: str | None) -> Position:
    """The position `cursor` names; InvalidCursor when it is not one this query issued."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        # strict UTF-8 and bounded nesting: a forged cursor is a client's input like any
        doc = json_text.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(doc, dict) or doc.get("v") != VERSION:
            raise ValueError("unknown cursor version")
        created = datetime.fromisoformat(str(doc["c"]))
        rid = doc["i"]
        fingerprint = doc["q"]
        if (
            created.tzinfo is None
            or not isinstance(rid, str)
            or not storable(rid)
            or not isinstance(fingerprint, str)
        ):
            raise ValueError("malformed cursor")
    except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error):
        raise InvalidCursor(
            "the cursor is not valid: send an empty cursor for the first page, then each "
            "page's nextCursor"
        ) from None
    if fingerprint != _fingerprint(resource_type, org_id, flt):
        raise InvalidCursor(
            "the cursor was issued for another query: repeat the filter of the request "
            "that returned it"
        )
    return Position(created, rid)
