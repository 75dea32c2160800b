"""Layer: pure. SCIM errors (RFC 7644 §3.12): each carries its HTTP status and `scimType`."""

from __future__ import annotations

from typing import Literal

from scim.schemas import ERROR

ScimType = Literal[
    "invalidFilter",
    "tooMany",
    "uniqueness",
    "mutability",
    "invalidSyntax",
    "invalidPath",
    "noTarget",
    "invalidValue",
    "invalidVers",
    "sensitive",
    "invalidCursor",  # RFC 9865 §2.1
]


class ScimError(Exception):
    """An error answered to a SCIM client in the Error schema."""

    def __init__(self, status: int, detail: str, scim_type: ScimType | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type

    def to_scim(self) -> dict[str, object]:
        body: dict[str, object] = {
            "schemas": [ERROR],
            "status": str(self.status),
            "detail": self.detail,
        }
        if self.scim_type is not None:
            body["scimType"] = self.scim_type
        return body


class InvalidFilter(ScimError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, detail, "invalidFilter")


class InvalidPath(ScimError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, detail, "invalidPath")


class InvalidValue(ScimError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, detail, "invalidValue")


class InvalidSyntax(ScimError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, detail, "invalidSyntax")


class MutabilityError(ScimError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, detail, "mutability")


class NoTarget(ScimError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, detail, "noTarget")


class Uniqueness(ScimError):
    def __init__(self, detail: str) -> None:
        super().__init__(409, detail, "uniqueness")


class TooMany(ScimError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, detail, "tooMany")


class NotFound(ScimError):
    def __init__(self, detail: str) -> None:
        super().__init__(404, detail)


class PreconditionFailed(ScimError):
    def __init__(self, detail: str) -> None:
        super().__init__(412, detail)


class InvalidCursor(ScimError):
    """RFC 9865 §2.1: a `cursor` this server did not issue for this query."""

    def __init__(self, detail: str) -> None:
        super().__init__(400, detail, "invalidCursor")
