"""Messaging plumbing: topology, broker factory, dead letters, outbox relay, parking."""
