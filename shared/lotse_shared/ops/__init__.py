"""Operator tools that work against a running system (no service code needed)."""
