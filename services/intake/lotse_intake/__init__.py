"""intake: registers people and who is responsible for them.

I/O: HTTP (FastAPI, port 8001), MongoDB database ``<ns>_intake``
(people, inbox, outbox), RabbitMQ: publishes intake.person.registered.v1 and
intake.person.updated.v1; consumes nothing yet.
"""
