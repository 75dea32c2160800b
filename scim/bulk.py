"""Layer: app. Bulk operations (RFC 7644 §3.7).

Each operation is its own transaction (bulk is not atomic per the RFC). `bulkId:`
references in paths and data are resolved to the ids created earlier in the same request;
an operation whose reference is not yet known is deferred until it is, and operations that
can never resolve (unknown or circular references) fail with 409.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from scim.context import ScimContext
from scim.errors import InvalidSyntax, InvalidValue, ScimError
from scim.http import exception_response
from scim.schemas import BULK_REQUEST, BULK_RESPONSE

if TYPE_CHECKING:
    from models.db.database import Database
    from scim.resources import ResourceOps

_BULK_REF = re.compile(r"bulkId:([^\"/\s]+)")
_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class TooManyOperations(ScimError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the bulk request exceeds maxOperations ({limit})")


def _refs(operation: dict[str, Any]) -> set[str]:
    text = json.dumps([operation.get("path"), operation.get("data")])
    return set(_BULK_REF.findall(text))


def _substitute(operation: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    def swap(match: re.Match[str]) -> str:
        # `_refs` reads the JSON text, this the raw path: a reference spelled differently
        # in the two (escapes) is left as written rather than raising KeyError.
        return ids.get(match.group(1), match.group(0))

    path = _BULK_REF.sub(swap, str(operation.get("path", "")))
    data = operation.get("data")
    if data is not None:
        data = json.loads(_BULK_REF.sub(swap, json.dumps(data)))
    return {**operation, "path": path, "data": data}


def _validate(body: dict[str, Any], max_ops: int) -> tuple[list[dict[str, Any]], int | None]:
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or BULK_REQUEST not in schemas):
        raise InvalidValue(f"schemas must be a list containing {BULK_REQUEST}")
    operations = body.get("Operations")
    if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
        raise InvalidSyntax("Operations must be a list of objects")
    if len(operations) > max_ops:
        raise TooManyOperations(max_ops)
    fail_on_errors = body.get("failOnErrors")
    if fail_on_errors is not None and (not isinstance(fail_on_errors, int) or fail_on_errors < 1):
        raise InvalidValue("failOnErrors must be a positive integer")
    return operations, fail_on_errors


def _check_shape(op: dict[str, Any]) -> None:
    """RFC 7644 §3.7: `method`, `path`, `bulkId` and `version` are strings. Anything else
    is 400 for that operation (a list as `path` used to reach the bulkId substitution
    as its Python repr, and a number as `version` the ETag comparison: both 500s)."""
    for name in ("method", "path"):
        if not isinstance(op.get(name), str):
            raise InvalidValue(f"operation '{name}' must be a string")
    for name in ("bulkId", "version"):
        if op.get(name) is not None and not isinstance(op[name], str):
            raise InvalidValue(f"operation '{name}' must be a string")


def _run_one(
    db: Database, ctx: ScimContext, op: dict[str, Any], endpoints: dict[str, ResourceOps]
) -> dict[str, Any]:
    method = str(op["method"]).upper()
    if method not in _METHODS:
        raise InvalidValue(f"method must be one of {', '.join(_METHODS)}")
    parts = [p for p in str(op["path"]).split("/") if p]
    if not parts or parts[0] not in endpoints or len(parts) > 2:
        raise InvalidValue(f"unsupported bulk path {op.get('path')!r}")
    ops = endpoints[parts[0]]
    rid = parts[1] if len(parts) == 2 else None
    data = op.get("data")
    if method in ("POST", "PUT", "PATCH") and not isinstance(data, dict):
        raise InvalidSyntax(f"{method} operations need a data object")
    if (method == "POST") != (rid is None):
        raise InvalidValue("POST targets a collection; PUT, PATCH and DELETE a resource")
    version = op.get("version")
    result: dict[str, Any] = {"method": method}
    if op.get("bulkId") is not None:
        result["bulkId"] = op["bulkId"]
    with db.write() as session:
        if method == "DELETE":
            assert rid is not None
            ops.delete(session, ctx, rid, version)
            result.update(location=f"{ctx.base_url}/{parts[0]}/{rid}", status="204")
            return result
        assert isinstance(data, dict)
        if method == "POST":
            row = ops.create(session, ctx, data)
            status = "201"
        elif method == "PUT":
            assert rid is not None
            row = ops.replace(session, ctx, rid, data, version)
            status = "200"
        else:
            assert rid is not None
            row = ops.patch(session, ctx, rid, data, version)
            status = "200"
        result.update(
            location=f"{ctx.base_url}/{parts[0]}/{row.id}",
            version=f'W/"{row.version}"',
            status=status,
            id=row.id,
        )
    return result


def run_bulk(
    db: Database,
    ctx: ScimContext,
    body: dict[str, Any],
    max_ops: int,
    endpoints: dict[str, ResourceOps],
) -> dict[str, Any]:
    operations, fail_on_errors = _validate(body, max_ops)
    created: dict[str, str] = {}
    results: list[tuple[int, dict[str, Any]]] = []
    errors = 0
    pending = list(enumerate(operations))
    declared = {str(o["bulkId"]) for o in operations if o.get("bulkId") is not None}
    while pending:
        progressed = False
        deferred: list[tuple[int, dict[str, Any]]] = []
        for index, op in pending:
            refs = _refs(op)
            waiting = {r for r in refs if r not in created}
            if (
                waiting
                and waiting <= declared
                and any(str(o.get("bulkId")) in waiting for _, o in pending if o is not op)
            ):
                deferred.append((index, op))
                continue
            progressed = True
            try:
                _check_shape(op)
                if waiting:
                    raise ScimError(409, f"unresolvable bulkId reference(s): {sorted(waiting)}")
                outcome = _run_one(db, ctx, _substitute(op, created), endpoints)
                new_id = outcome.pop("id", None)
                if op.get("method", "").upper() == "POST" and op.get("bulkId") and new_id:
                    created[str(op["bulkId"])] = new_id
                results.append((index, outcome))
            except Exception as exc:
                errors += 1
                response = exception_response(exc)
                entry: dict[str, Any] = {
                    "method": str(op.get("method", "")).upper(),
                    "status": str(response.status_code),
                    "response": json.loads(bytes(response.body)),
                }
                if op.get("bulkId") is not None:
                    entry["bulkId"] = op["bulkId"]
                results.append((index, entry))
                if fail_on_errors is not None and errors >= fail_on_errors:
                    pending = []
                    deferred = []
                    break
        if not progressed:
            for index, op in deferred:
                entry = {
                    "method": str(op.get("method", "")).upper(),
                    "status": "409",
                    "response": ScimError(409, "circular bulkId references").to_scim(),
                }
                if op.get("bulkId") is not None:
                    entry["bulkId"] = op["bulkId"]
                results.append((index, entry))
            break
        pending = deferred
    results.sort(key=lambda item: item[0])
    return {"schemas": [BULK_RESPONSE], "Operations": [r for _, r in results]}
