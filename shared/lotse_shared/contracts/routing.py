"""Every routing key on the ``<namespace>.events`` topic exchange, in one place.

Form: ``<producer>.<entity>.<what happened>.v<version>``. Partner input starts
with ``partner.``; a partner may publish only those keys.
"""

from typing import Final

# intake
PERSON_REGISTERED_V1: Final = "intake.person.registered.v1"
PERSON_UPDATED_V1: Final = "intake.person.updated.v1"
PERSON_ERASED_V1: Final = "intake.person.erased.v1"

# courses
ENROLLED_V1: Final = "courses.enrolment.created.v1"
ATTENDANCE_RECORDED_V1: Final = "courses.attendance.recorded.v1"
EXAM_RESULT_RECORDED_V1: Final = "courses.exam_result.recorded.v1"
COURSE_COMPLETED_V1: Final = "courses.course.completed.v1"
COURSE_DROPPED_V1: Final = "courses.course.dropped.v1"

# placement
OPENING_PUBLISHED_V1: Final = "placement.opening.published.v1"
OPENING_CLOSED_V1: Final = "placement.opening.closed.v1"
SUGGESTIONS_READY_V1: Final = "placement.suggestions.ready.v1"
SUGGESTION_ACCEPTED_V1: Final = "placement.suggestion.accepted.v1"
SUGGESTION_DISMISSED_V1: Final = "placement.suggestion.dismissed.v1"
CASE_STAGE_CHANGED_V1: Final = "placement.case.stage_changed.v1"
CASE_CLOSED_V1: Final = "placement.case.closed.v1"
IMPORT_COMPLETED_V1: Final = "placement.import.completed.v1"

# notifications
NOTIFICATION_DELIVERED_V1: Final = "notifications.notification.delivered.v1"
NOTIFICATION_FAILED_V1: Final = "notifications.notification.failed.v1"

# partners (schools, employment agency, chambers) -> Lotse
PARTNER_ENROLMENT_REPORTED_V1: Final = "partner.course.enrolment_reported.v1"
PARTNER_ATTENDANCE_REPORTED_V1: Final = "partner.course.attendance_reported.v1"
PARTNER_EXAM_RESULT_REPORTED_V1: Final = "partner.course.exam_result_reported.v1"
PARTNER_COMPLETION_REPORTED_V1: Final = "partner.course.completion_reported.v1"
PARTNER_DROPOUT_REPORTED_V1: Final = "partner.course.dropout_reported.v1"
PARTNER_OPENING_REPORTED_V1: Final = "partner.opening.reported.v1"
PARTNER_OPENING_WITHDRAWN_V1: Final = "partner.opening.withdrawn.v1"
PARTNER_OPENING_FEED_REPORTED_V1: Final = "partner.opening.feed_reported.v1"
