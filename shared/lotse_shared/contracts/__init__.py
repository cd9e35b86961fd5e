"""Wire contracts: the envelope, one module per producer, and the catalogue."""

from .envelope import Event, Payload, utcnow

__all__ = ["Event", "Payload", "utcnow"]
