"""Layer: store. Errors of the configuration store; each names the offending field.

The admin API turns them into ``{"detail": message, "field": field}`` with ``status``.
"""

from __future__ import annotations


class ConfigError(Exception):
    """Invalid configuration input (422 unless a subclass says otherwise)."""

    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def under(self, prefix: str) -> ConfigError:
        """The same error with ``field`` nested under ``prefix`` (e.g. ``roles[2]``)."""
        field = f"{prefix}.{self.field}" if self.field else prefix
        return type(self)(field, self.message)


class ForbiddenError(ConfigError):
    """The request names another organization than the admin key's."""

    status = 403


class NotFoundError(ConfigError):
    """The object named in the request path does not exist in the organization."""

    status = 404


class ConflictError(ConfigError):
    """The write conflicts with existing state (duplicate id, object still in use)."""

    status = 409
