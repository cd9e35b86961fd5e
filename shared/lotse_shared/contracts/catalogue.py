"""Every event class Lotse knows, keyed by routing key. Used by tests and docs.

A routing key on the ``<namespace>.events`` topic exchange has the form
``<producer>.<entity>.<what happened>.v<version>`` and follows from the class's
``event_type`` and ``event_version``. Partner input starts with ``partner.``; a partner
may publish only those keys.
"""

from __future__ import annotations

from . import courses, intake, notifications, partner, placement
from .envelope import Event

ALL_EVENTS: tuple[type[Event], ...] = (
    intake.PersonRegistered,
    intake.PersonUpdated,
    intake.PersonErased,
    courses.Enrolled,
    courses.AttendanceRecorded,
    courses.ExamResultRecorded,
    courses.CourseCompleted,
    courses.CourseDropped,
    placement.OpeningPublished,
    placement.OpeningClosed,
    placement.SuggestionsReady,
    placement.SuggestionAccepted,
    placement.SuggestionDismissed,
    placement.CaseStageChanged,
    placement.CaseClosed,
    placement.ImportCompleted,
    notifications.NotificationDelivered,
    notifications.NotificationFailed,
    partner.EnrolmentReported,
    partner.AttendanceReported,
    partner.ExamResultReported,
    partner.CompletionReported,
    partner.DropoutReported,
    partner.OpeningReported,
    partner.OpeningWithdrawn,
    partner.OpeningFeedReported,
)

BY_ROUTING_KEY: dict[str, type[Event]] = {cls.ROUTING_KEY: cls for cls in ALL_EVENTS}
