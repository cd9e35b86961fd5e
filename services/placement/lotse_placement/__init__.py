"""placement: openings from partners, ranked suggestions, the placement pipeline.

I/O: HTTP (FastAPI, port 8003), MongoDB database ``<ns>_placement`` (openings,
people, suggestion_sets, suggested, cases, imports, erasures, inbox, outbox,
parked, audit_log), RabbitMQ: consumes
intake's person events, courses.course.completed and the partners'
partner.opening.*; publishes placement.opening.published / opening.closed /
suggestions.ready (all v1).
"""
