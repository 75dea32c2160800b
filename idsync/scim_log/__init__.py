"""Layer: app. The SCIM request log: every SCIM request, redacted, kept for a while
(docs/operations.md)."""
