"""Errors the domain raises. Pure: entry points translate them.

HTTP maps NotFound to 404, Conflict to 409 and RuleViolation to 422 (naming the
field); the consumer plumbing dead-letters any DomainError with its message as
the reason, since redelivering it would fail the same way.
"""


class DomainError(Exception):
    """A request or event that can never succeed as it is."""


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass


class RuleViolation(DomainError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Forbidden(DomainError):
    """The caller is known but may not do this (403); for reading another district's or
    another caseworker's person, answer NotFound instead, so ids cannot be probed."""
