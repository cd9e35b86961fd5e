"""intake: registers people and who is responsible for them.

I/O: HTTP (FastAPI, port 8001), MongoDB database ``<ns>_intake``
(people, erasures, inbox, outbox, audit_log), RabbitMQ: publishes
intake.person.registered.v1, intake.person.updated.v1 and intake.person.erased.v1;
consumes nothing yet (it applies an erasure itself, in the request's transaction).
"""
