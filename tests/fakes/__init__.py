"""In-memory stand-ins for the units of work and repositories, for the unit tier:
every use case runs against them with no broker and no database."""
