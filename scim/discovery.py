"""Layer: pure. Discovery endpoints' bodies (RFC 7644 §4): truthful about what idsync supports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim.schemas import RESOURCE_TYPES, SCHEMAS, SERVICE_PROVIDER_CONFIG


@dataclass(frozen=True)
class Limits:
    max_results: int
    max_bulk_operations: int
    max_payload_bytes: int


def service_provider_config(
    base_url: str, limits: Limits, default_page_size: int
) -> dict[str, Any]:
    return {
        "schemas": [SERVICE_PROVIDER_CONFIG],
        "documentationUri": "https://github.com/idsync/idsync#scim",
        "patch": {"supported": True},
        "bulk": {
            "supported": True,
            "maxOperations": limits.max_bulk_operations,
            "maxPayloadSize": limits.max_payload_bytes,
        },
        "filter": {"supported": True, "maxResults": limits.max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        # RFC 9865 §4. No cursorTimeout: cursors are positions and do not expire.
        "pagination": {
            "cursor": True,
            "index": True,
            "defaultPaginationMethod": "index",
            "defaultPageSize": default_page_size,
            "maxPageSize": limits.max_results,
        },
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A per-organization bearer token created with "
                "`idsync token create --org NAME`; nested groups are not supported.",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base_url}/ServiceProviderConfig",
        },
    }


def resource_types(base_url: str) -> list[dict[str, Any]]:
    return [rt.to_scim(base_url) for rt in RESOURCE_TYPES]


def schemas(base_url: str) -> list[dict[str, Any]]:
    return [s.to_scim(base_url) for s in SCHEMAS]
