"""Layer: support (pure). Masking credentials: credential-named keys at any depth of
dicts, lists and header pairs, and ``Bearer …``/``token=…`` inside free text. Used by the
logs (``idsync.logs``), the SCIM request log and the IdP pull runs' error text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"

# Key names that carry credentials: authorization, proxy-authorization, cookie,
# set-cookie, token, access_token, scim_token, password, passwd, secret,
# client_secret, api_key, apikey, x-api-key, private_key, credential(s).
SECRET_KEY = re.compile(
    r"authori[sz]ation|cookie|token|passw(or)?d|secret|api[-_]?key|private[-_]?key|credential",
    re.IGNORECASE,
)
# Credentials inside free text: "Bearer abc.def", "Basic dXNlcjpw", "token=…", "password: …".
_SECRET_TEXT = re.compile(
    r"(?P<scheme>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+"
    r"|(?P<key>\b(?:token|password|passwd|secret|api[-_]?key)\b\s*[=:]\s*)[^\s,;&\"']+",
    re.IGNORECASE,
)
_MAX_DEPTH = 8


def redact_text(text: str) -> str:
    """Mask credentials that appear in free text (`Bearer …`, `token=…`)."""
    return _SECRET_TEXT.sub(
        lambda m: (m.group("scheme") or m.group("key")) + REDACTED,
        text,
    )


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of `value` with credential-named keys masked at every depth."""
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and SECRET_KEY.search(k) else redact(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str | bytes):
        # A header pair, as in ASGI scopes: (b"authorization", b"Bearer …").
        name = value[0].decode("latin-1") if isinstance(value[0], bytes) else value[0]
        if SECRET_KEY.search(name):
            return (value[0], REDACTED)
    if isinstance(value, list | tuple):
        return [redact(v, depth + 1) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
