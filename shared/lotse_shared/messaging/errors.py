"""Exceptions that tell the consumer plumbing what to do with a message."""

from lotse_shared.errors import DomainError


class PermanentError(DomainError):
    """The message can never be applied as it is: dead-letter it with this reason.

    Raised by handlers for rule violations (e.g. a DTZ result of "C1"); pydantic's
    ValidationError is treated the same way.
    """


class AlreadyApplied(Exception):
    """The event id was applied before; the message is acknowledged and ignored."""


class PersonErased(AlreadyApplied):
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
