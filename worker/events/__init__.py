"""Layer: worker. Events: derived from the change log, delivered to webhooks in order, signed
(docs/events.md)."""
