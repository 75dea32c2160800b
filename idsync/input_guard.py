"""Layer: app. Refuse request values no backend can store, before a handler binds them (/api/v1).

PostgreSQL's text and jsonb types cannot hold U+0000, and no UTF-8 text can hold an
unpaired UTF-16 surrogate (which a JSON `\\ud800` escape produces). Bound into a
statement, either fails it with a database error, a 500; on SQLite the NUL would even
be stored. So, under /api/v1, as a router dependency:

- a path parameter holding U+0000 names nothing that exists: 404;
- a query parameter or any string in a JSON body holding either: 422, in the admin
  API's error shape (`{"detail": …, "field": …}`, through RequestValidationError).

It runs before authentication: what it refuses is refused whatever the credentials,
and it says nothing about what exists. The SCIM API refuses the same values itself,
after authentication as SCIM's error rules have it (`scim.http.parse_json_object`,
`models.db.base.storable`).
"""

from __future__ import annotations

import json

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError

from models import json_text
from models.db.base import storable, unstorable

_WHY = {
    "nul": "must not contain U+0000 (NUL)",
    "surrogate": "must not contain an unpaired UTF-16 surrogate",
}


def _invalid(loc: tuple[str, ...], why: str) -> RequestValidationError:
    return RequestValidationError([{"loc": loc, "msg": why, "type": "value_error"}])


async def storable_input(request: Request) -> None:
    """The dependency: raise for a value the database could not take (see module doc)."""
    if not all(storable(str(value)) for value in request.path_params.values()):
        raise HTTPException(404, "not found")
    for name, value in request.query_params.multi_items():
        if not storable(value):
            raise _invalid(("query", name), _WHY["nul"])
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    body = await request.body()  # Starlette keeps it for the handler's own parsing
    problem = json_text.body_problem(body)  # not UTF-8, nested too deep
    if problem is not None:
        raise _invalid(("body",), problem)
    refuse_unstorable_body(body)


def refuse_unstorable_body(body: bytes) -> None:
    """Raise RequestValidationError (422) when a string in the JSON ``body`` holds U+0000
    or an unpaired surrogate; cheap for the usual body (no ``\\u`` escape in it).
    Routes that parse their own body (``idsync.check_api``) call it directly."""
    if b"\\u" not in body:  # only an escape can produce either in UTF-8 JSON text
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        return  # not JSON: the handler's validation says so
    found = unstorable(parsed)
    if found is not None:
        raise _invalid(("body",), f"string values {_WHY[found]}")
