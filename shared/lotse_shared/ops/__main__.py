"""Operator commands: ``python -m lotse_shared.ops dead-letters list|show|replay``
and ``python -m lotse_shared.ops partner add|sync|remove|key`` (see partner_cli).

Reads LOTSE_RABBIT_URL (or LOTSE_RABBIT_URL_FILE), LOTSE_NAMESPACE and the
LOTSE_RABBIT_TLS_* files like the services do. Also available
as ``lotse dead-letters ...`` where the dev tools are installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from lotse_shared.settings import ServiceSettings
from lotse_shared.transport import amqp_ssl_context

from .dead_letters import DeadLetterDesk
from .partner_cli import add_partner_commands, run_partner

SERVICES = ("intake", "courses", "placement", "notifications")


def add_dead_letter_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dl = sub.add_parser("dead-letters", help="list, show and replay dead letters")
    dl_sub = dl.add_subparsers(dest="action", required=True)
    ls = dl_sub.add_parser("list", help="one line per dead letter")
    ls.add_argument("--service", choices=SERVICES, action="append")
    show = dl_sub.add_parser("show", help="one dead letter with headers and body")
    show.add_argument("message_id")
    show.add_argument("--service", choices=SERVICES, action="append")
    replay = dl_sub.add_parser("replay", help="send back to the service (idempotent)")
    replay.add_argument("--service", choices=SERVICES, required=True)
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("message_id", nargs="?")
    which.add_argument("--all", action="store_true")


async def run_dead_letters(args: argparse.Namespace) -> int:
    settings = ServiceSettings()
    desk = DeadLetterDesk(settings.rabbit_url, settings.namespace, amqp_ssl_context(settings))
    if args.action == "replay":
        count = await desk.replay(args.service, None if args.all else args.message_id)
        print(f"replayed {count} dead letter(s) to {args.service}")
        return 0 if count or args.all else 1
    services = args.service or SERVICES
    found = 0
    for service in services:
        for letter in await desk.list(service):
            if args.action == "show" and letter.message_id != args.message_id:
                continue
            found += 1
            if args.action == "list":
                print(
                    f"{service:<14} {letter.message_id:<38} {letter.routing_key:<42} "
                    f"attempts={letter.attempts} {letter.reason}"
                )
            else:
                print(
                    json.dumps(
                        {
                            "service": service,
                            "message_id": letter.message_id,
                            "routing_key": letter.routing_key,
                            "reason": letter.reason,
                            "error_type": letter.error_type,
                            "attempts": letter.attempts,
                            "dead_at": letter.dead_at,
                            "headers": {k: str(v) for k, v in letter.headers.items()},
                            "body": letter.body.decode(errors="replace"),
                        },
                        indent=2,
                        ensure_ascii=False,
                    )
                )
    if args.action == "list":
        print(f"{found} dead letter(s)")
    return 0 if found or args.action == "list" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lotse_shared.ops")
    sub = parser.add_subparsers(dest="command", required=True)
    add_dead_letter_commands(sub)
    add_partner_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "partner":
        return run_partner(args)
    return asyncio.run(run_dead_letters(args))


if __name__ == "__main__":
    sys.exit(main())
