"""Layer: pure. Typed errors of the access model.

Every validation error names the offending field (a dotted path such as
``resource_grants[2].grants[0]``) so the admin API can turn it into a 4xx.
Checks about users never raise: an unknown, inactive or deleted user is a deny.
"""

from __future__ import annotations


class AccessModelError(Exception):
    """Base class of every error raised by ``models.access``."""


class ValidationError(AccessModelError, ValueError):
    """Invalid input from an administrator (role, rule, binding, policy)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownGrantError(ValidationError):
    """A grant, action or resource type that the vocabulary does not know."""


class UnsafePatternError(ValidationError):
    """A mapping-rule regular expression that RE2 rejects (or that is too large)."""
