"""Lotse's shared kernel: what every service uses and no service owns.

- ``contracts``: the wire events (envelope + one module per producer).
- ``messaging``: broker factory, topology, outbox relay, idempotent inbox, dead letters.
- ``persistence``: the AsyncMongoClient factory and the unit of work.
- ``settings``: the base settings every service extends.

Nothing here imports a service, and nothing here does I/O at import time.
"""
