"""Layers: pure (the SCIM protocol: schemas, filter grammar and semantics, PATCH,
normalization, projection, rendering), store (the SCIM resource stores and their SQL) and
app (the HTTP routes); see docs/architecture.md."""
