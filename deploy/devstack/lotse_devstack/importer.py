"""``lotse import jobsuche|csv FILE``: send a partner's file to placement in batches.

The file is cut into batches of whole records; every batch goes to
``POST /imports/<format>`` under one import id, with its position in the file so
rejections name the file's own rows; ``POST /imports/<id>/complete`` then ends the
import (with ``--full-feed``: closes the source's openings that no batch named) and
returns the totals, which are printed with every rejection.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
from tqdm import tqdm

from .stack import DEFAULT_PORTS

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORTS['placement']}"
DEFAULT_SOURCES = {"jobsuche": "ba-jobsuche"}


@dataclass(frozen=True)
class Batch:
    records: int  # how many records it carries
    row_offset: int  # added to the rows the service reports, so they are the file's
    content: bytes
    content_type: str


def add_import_commands(sub: Any) -> None:
    """Register ``lotse import jobsuche|csv`` on the ``lotse`` command's subparsers."""
    parser = sub.add_parser("import", help="send a partner's openings file to placement")
    formats = parser.add_subparsers(dest="format", required=True)
    for fmt, help_text in (
        ("jobsuche", "Jobsuche JSON: search results, a job detail or a list of them"),
        ("csv", "a chamber's CSV list (columns in docs/imports.md)"),
    ):
        p = formats.add_parser(fmt, help=help_text)
        p.add_argument("file", type=Path)
        p.add_argument("--url", default=DEFAULT_URL, help=f"placement (default {DEFAULT_URL})")
        p.add_argument(
            "--source",
            default=DEFAULT_SOURCES.get(fmt),
            required=fmt not in DEFAULT_SOURCES,
            help="the partner, e.g. ihk-kassel"
            + (" (default ba-jobsuche)" if fmt in DEFAULT_SOURCES else ""),
        )
        p.add_argument(
            "--full-feed",
            action="store_true",
            help="the file is everything the partner offers: close its openings not in it",
        )
        p.add_argument("--batch-size", type=int, default=200, help="records per request")
        p.add_argument(
            "--token",
            default=None,
            help="bearer token for placement (default: $LOTSE_TOKEN; locally `lotse token`)",
        )
        if fmt == "jobsuche":
            p.add_argument(
                "--angebotsart",
                type=int,
                choices=[1, 2, 4, 34],
                help="the search's angebotsart, for records that do not name their own",
            )


def jobsuche_batches(document: Any, size: int) -> Iterator[Batch]:
    """The records of any Jobsuche document shape, ``size`` at a time, as JSON lists."""
    if isinstance(document, dict) and isinstance(document.get("stellenangebote"), list):
        records = document["stellenangebote"]
    elif isinstance(document, list):
        records = []
        for item in document:
            nested = item.get("stellenangebote") if isinstance(item, dict) else None
            records.extend(nested if isinstance(nested, list) else [item])
    else:
        records = [document]  # the service says what is wrong with it
    for start in range(0, max(len(records), 1), size):
        chunk = records[start : start + size]
        yield Batch(len(chunk), start, json.dumps(chunk).encode(), "application/json")


def csv_batches(text: str, size: int) -> Iterator[Batch]:
    """The header line plus ``size`` records at a time, cut at the file's own line
    boundaries (a quoted field may span lines), so line numbers stay the file's."""
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    delimiter = ";" if ";" in lines[0] else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    next(reader, None)
    spans: list[tuple[int, int]] = []  # (first line, last line) of each record, from 1
    previous_end = reader.line_num
    for _ in reader:
        spans.append((previous_end + 1, reader.line_num))
        previous_end = reader.line_num
    if not spans:
        yield Batch(0, 0, (lines[0] + "\n").encode(), "text/csv")
        return
    for start in range(0, len(spans), size):
        chunk = spans[start : start + size]
        first, last = chunk[0][0], chunk[-1][1]
        body = "\n".join([lines[0], *lines[first - 1 : last]]) + "\n"
        yield Batch(len(chunk), first - 2, body.encode(), "text/csv")


def print_summary(summary: dict[str, Any], out: TextIO) -> None:
    counts = ", ".join(
        f"{summary[k]} {k}" for k in ("received", "created", "updated", "unchanged", "closed")
    )
    print(f"import {summary['import_id']} ({summary['source']}): {counts}", file=out)
    # rejected records were not imported; notices were, with something to check
    for kind in ("rejected", "notices"):
        entries = summary.get(kind) or []
        if kind == "notices" and not entries:
            continue
        print(f"{len(entries)} {kind}" + (":" if entries else ""), file=out)
        for r in entries:
            row = f"row {r['row']}" if r.get("row") is not None else "row ?"
            print(f"  {row:<9} {r.get('ref') or '(no ref)':<24} {r['reason']}", file=out)


def _refused(response: httpx.Response, out: TextIO) -> int:
    """Placement's problem details: each refused field of a 422, else its ``detail``."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        print(f"refused ({response.status_code}): {response.text}", file=out)
        return 2
    errors = problem.get("errors")
    if isinstance(errors, list) and errors:
        for e in errors:
            print(f"refused: {e.get('field') or 'request'}: {e.get('reason')}", file=out)
    else:
        print(f"refused ({response.status_code}): {problem.get('detail')}", file=out)
    return 2


def run_import(
    args: argparse.Namespace,
    *,
    out: TextIO | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """0: imported, nothing rejected; 1: imported, some records rejected; 2: refused."""
    out = out or sys.stdout
    raw = args.file.read_bytes()
    if args.format == "jobsuche":
        batches = list(jobsuche_batches(json.loads(raw), args.batch_size))
    else:
        batches = list(csv_batches(raw.decode("utf-8-sig"), args.batch_size))
    import_id = uuid.uuid4()
    params: dict[str, Any] = {"source": args.source, "import_id": str(import_id)}
    if getattr(args, "angebotsart", None):
        params["angebotsart"] = args.angebotsart
    total = sum(b.records for b in batches)
    token = getattr(args, "token", None) or os.environ.get("LOTSE_TOKEN")
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    with (
        httpx.Client(base_url=args.url, timeout=300.0, transport=transport, headers=auth) as client,
        tqdm(total=total, unit="record", desc=f"import {args.file.name}", file=sys.stderr) as bar,
    ):
        for done, batch in enumerate(batches):
            response = client.post(
                f"/imports/{args.format}",
                params=params | {"row_offset": batch.row_offset},
                content=batch.content,
                headers={"content-type": batch.content_type},
            )
            if response.status_code != 200:
                bar.close()
                if done:
                    sent = sum(b.records for b in batches[:done])
                    print(f"{sent} records of earlier batches were imported", file=out)
                return _refused(response, out)
            bar.update(batch.records)
        response = client.post(
            f"/imports/{import_id}/complete", params={"full_feed": args.full_feed}
        )
    if response.status_code != 200:
        return _refused(response, out)
    summary = response.json()
    print_summary(summary, out)
    return 1 if summary["rejected"] else 0
