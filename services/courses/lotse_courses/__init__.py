"""courses: German courses, enrolments, attendance, exams, completion and drop-out.

I/O: HTTP (FastAPI, port 8002), MongoDB database ``<ns>_courses`` (courses,
enrolments, known_people, erasures, inbox, outbox, parked, audit_log), RabbitMQ: consumes intake's
person events and the schools' partner.course.* reports; publishes
courses.enrolment.created / attendance.recorded / exam_result.recorded /
course.completed / course.dropped (all v1).
"""
