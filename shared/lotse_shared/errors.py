"""Every error Lotse's code raises on purpose, in one module. Pure: entry points
translate them.

- what the domain raises: HTTP maps NotFound to 404, Conflict to 409 and
  RuleViolation to 422 (naming the field); the consumer plumbing dead-letters any
  DomainError with its message as the reason, since redelivering it would fail
  the same way;
- what tells the consumer plumbing what to do with a message it did not apply:
  AlreadyApplied (acknowledge, ignore), AboutErasedPerson (the same, for an
  erased person), NotYetApplicable (park it until another event arrives).
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


class AlreadyApplied(Exception):
    """The event id was applied before; the message is acknowledged and ignored."""


class AboutErasedPerson(AlreadyApplied):
    """The event is about a person this service erased: acknowledged and ignored, so a
    late or replayed event cannot bring their data back."""


class NotYetApplicable(Exception):
    """The event cannot be applied yet, but may be after another event arrives.

    Events travel on separate queues and are handled concurrently, so a school's
    "completed" can overtake its "exam passed", and "course completed" can
    overtake "person registered". Such a message is parked (kept in the
    service's database), retried when the next event about the same person is
    applied and by a periodic sweep, and dead-lettered with the reason if it
    still cannot be applied after the parking limit.
    """

    def __init__(self, person_id: str, reason: str) -> None:
        super().__init__(reason)
        self.person_id = person_id


class PersonNotYetKnown(NotYetApplicable):
    """The event is about a person this service has not heard of yet."""

    def __init__(self, person_id: str) -> None:
        super().__init__(person_id, f"person {person_id} is not known yet")
