"""notifications: tells the responsible contacts what happened to their people.

I/O: HTTP (FastAPI, port 8004), MongoDB database ``<ns>_notifications``
(recipients, notifications, preferences, attendance, erasures, inbox, outbox,
parked, audit_log), SMTP (aiosmtplib),
RabbitMQ: consumes intake's person events, courses.course.completed,
courses.course.dropped and placement.suggestions.ready; publishes
notifications.notification.delivered.v1.
"""
