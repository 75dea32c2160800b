"""Layer: app. What of a SCIM request may be stored: bodies and queries with secrets masked.

The rules are ``idsync.logs``'s credential masking (credential-named keys at any depth,
``Bearer …``/``token=…`` in text), plus SCIM's own shape: a PATCH operation whose
``path`` names a credential (``{"op": "replace", "path": "password", "value": …}``)
has its ``value`` masked. A body that is not JSON is stored as masked text. Everything
is cut at ``max_bytes``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from models.redaction import REDACTED, SECRET_KEY, redact, redact_text

TRUNCATED = "…[truncated]"

# A safety net over the serialized JSON, at any depth: "<credential-named key>": value.
_JSON_MEMBER = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:\s*("(?:[^"\\]|\\.)*"|[^,{}\[\]"]+)')


# Every word a rule here masks on (``SECRET_KEY``'s key names, which include the key
# words of ``redact_text``, and its ``Bearer``/``Basic`` schemes). Serialized JSON never
# escapes a letter, so a body whose text holds none of them has nothing to mask: most
# bodies, checked with one scan instead of a walk and a substitution pass.
_MAY_HOLD_A_SECRET = re.compile(f"{SECRET_KEY.pattern}|bearer|basic", re.IGNORECASE)


def _mask_members(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        if SECRET_KEY.search(m.group(1)) and m.group(2) != f'"{REDACTED}"':
            return f'"{m.group(1)}":"{REDACTED}"'
        return m.group(0)

    return _JSON_MEMBER.sub(one, text)


def _mask_operations(doc: Any) -> Any:
    if not isinstance(doc, dict):
        return doc
    ops = doc.get("Operations")
    if isinstance(ops, list):
        doc = {**doc, "Operations": [_mask_operation(op) for op in ops]}
    bulk = doc.get("Operations") if "BulkRequest" in str(doc.get("schemas", "")) else None
    if isinstance(bulk, list):
        doc["Operations"] = [
            {**op, "data": _mask_operations(op.get("data"))} if isinstance(op, dict) else op
            for op in bulk
        ]
    return doc


def _mask_operation(op: Any) -> Any:
    if isinstance(op, dict) and "value" in op:
        path = op.get("path")
        if isinstance(path, str) and SECRET_KEY.search(path):
            return {**op, "value": REDACTED}
    return op


def _cut(text: str, max_bytes: int) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", "ignore") + TRUNCATED


def redact_body(raw: bytes, max_bytes: int) -> str | None:
    """The storable form of a request body (None when there was none)."""
    if not raw:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _cut(redact_text(raw.decode("utf-8", "replace")), max_bytes)
    text = orjson.dumps(doc).decode()
    if _MAY_HOLD_A_SECRET.search(text) is None:
        return _cut(text, max_bytes)  # no rule below could mask anything: stored as is
    masked = redact(_mask_operations(doc))
    return _cut(_mask_members(orjson.dumps(masked).decode()), max_bytes)


def redact_query(query: str) -> str:
    return redact_text(query)
