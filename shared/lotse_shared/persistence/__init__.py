"""MongoDB plumbing: client factory and the unit of work."""
