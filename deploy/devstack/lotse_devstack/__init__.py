"""Run Lotse on one machine as processes: ``make up`` and ``make demo``, plus the lotse CLI.

A development tool, never part of a service image (it pulls in SecantusDB,
which is GPL-2.0 and beta, only to stand in for MongoDB where none is installed).
"""
