"""What notifications tells other services: who it is, on the events it publishes."""

from __future__ import annotations

PRODUCER = "notifications"
