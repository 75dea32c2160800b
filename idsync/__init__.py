"""Layer: app. idsync's entry points: the HTTP app and its APIs, and the CLI
(docs/architecture.md)."""
