"""Openings from partners in their own formats: the Jobsuche API and chamber CSV lists.

Pure parsing: a document in, ``ParsedFeed`` (normalised openings and rejections) out.
"""

from .chambers_csv import COLUMNS, parse_csv
from .common import FeedError, Notice, ParsedFeed, Rejection, Superseded
from .jobsuche import parse_jobsuche

__all__ = [
    "COLUMNS",
    "FeedError",
    "Notice",
    "ParsedFeed",
    "Rejection",
    "Superseded",
    "parse_csv",
    "parse_jobsuche",
]
