"""The ``lotse`` command: ``lotse up`` runs the stack, ``lotse demo`` runs the main flow,
``lotse import jobsuche|csv FILE`` sends a partner's openings file to placement,
``lotse partner add|sync|remove|key`` manages partners' broker users and API keys."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
import uuid
from pathlib import Path

from lotse_shared.auth import Role
from lotse_shared.ops.__main__ import add_dead_letter_commands, run_dead_letters
from lotse_shared.ops.partner_cli import add_partner_commands, run_partner

from .chaos import SCENARIOS, run_scenario
from .cleanup import delete_namespace
from .importer import add_import_commands, run_import
from .stack import SERVICES, LocalStack, StackConfig


def print_portal(stack: LocalStack) -> None:
    """Where to sign in, and as whom (the local provider's login form lists them too)."""
    from .oidc import DEV_USERS

    assert stack.idp is not None
    print(f"  portal         {stack.url('portal')}  (sign in through {stack.idp.url})")
    for user in DEV_USERS:
        print(f"    sign in as   {user.sub:<46} {', '.join(user.roles)}, {user.district}")


def _up(args: argparse.Namespace) -> int:
    config = StackConfig.from_env()
    config.portal = True
    with LocalStack(config) as stack:
        if not args.empty:
            # a new user signs in to a workspace with people in it: the demo's flow first
            from .demo import run_demo

            print("filling the stack with the demo's people, courses and openings ...")
            if asyncio.run(run_demo(stack)) != 0:
                print("the demo flow failed; the stack stays up for a look at the logs")
        print("Lotse is running:")
        print_portal(stack)
        for service in SERVICES:
            print(f"  {service:<14} {stack.url(service)}  (docs: /docs, events: /asyncapi)")
        print(f"  mongodb        {stack.mongo_url}")
        print(f"  smtp           {stack.smtp[0]}:{stack.smtp[1]}" if stack.smtp else "")
        print(f"  logs           {stack.log_dir}")
        if stack.auth_env():
            print(
                "  tokens         lotse token --role caseworker --user you@... "
                f"(keys: {stack.issuer.directory})"
            )
        from .partner import DevPartners, partner_url

        exchange = f"{config.namespace}.events"
        for partner_id, password in DevPartners().ensure_all(exchange).items():
            url = partner_url(config.rabbit_url, partner_id, password)
            print(f"  partner        {url}  (on {exchange}, user_id={partner_id})")
        print("Ctrl-C stops everything.")
        stop = False

        def on_signal(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, on_signal)
        try:
            while not stop:
                signal.pause() if hasattr(signal, "pause") else None
        except KeyboardInterrupt:
            pass
        print("\nstopping ...")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    config = StackConfig.from_env()
    config.portal = True
    if args.fresh_namespace:
        config.namespace = f"demo-{uuid.uuid4().hex[:8]}"
    with LocalStack(config) as stack:
        print(f"stack up (namespace {config.namespace}, logs in {stack.log_dir})")
        code = asyncio.run(run_demo(stack))
        print("\nstopping the stack ...")
    if args.fresh_namespace:  # leave the broker (and a given database) as we found them
        asyncio.run(delete_namespace(config.rabbit_url, config.namespace, config.mongo_url))
    print("demo finished" if code == 0 else "demo FAILED")
    return code


def _chaos(args: argparse.Namespace) -> int:
    import os
    import tempfile
    from pathlib import Path

    rabbit_url = os.environ.get("LOTSE_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/")
    workdir = Path(tempfile.mkdtemp(prefix="lotse-chaos-"))
    lines = []
    failed = False
    for name in args.scenario or SCENARIOS:
        started = time.monotonic()
        result = asyncio.run(run_scenario(name, args.events, rabbit_url, workdir))
        result.extra["seconds"] = round(time.monotonic() - started)
        print(result.line(), flush=True)
        lines.append(result.line())
        failed = failed or result.lost > 0 or result.duplicates > 0
    print(f"\nlogs: {workdir}")
    print("\n".join(lines))
    return 1 if failed else 0


def _token(args: argparse.Namespace) -> int:
    from .tokens import DevIssuer, default_dir

    issuer = DevIssuer(args.keys or default_dir())
    print(
        issuer.token(
            args.role,
            user=args.user,
            district=args.district or None,
            partner=args.partner,
            ttl_s=args.ttl,
        )
    )
    print(
        f"signed by {issuer.issuer} with {issuer.key_file}; services read {issuer.jwks_file}",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="lotse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack and keep it running until Ctrl-C")
    up.add_argument(
        "--empty",
        action="store_true",
        help="start without the demo's people, courses and openings",
    )
    demo = sub.add_parser("demo", help="start the stack, run the main flow, stop")
    demo.add_argument(
        "--keep-namespace",
        dest="fresh_namespace",
        action="store_false",
        help="use LOTSE_NAMESPACE instead of a fresh one (queues and databases are reused)",
    )
    chaos = sub.add_parser("chaos", help="run the chaos scenarios and print a summary each")
    chaos.add_argument("--events", type=int, default=2000)
    chaos.add_argument("--scenario", action="append", choices=SCENARIOS)
    token = sub.add_parser(
        "token", help="print a bearer token signed with the local dev keys (made on first use)"
    )
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--user", required=True, help="user id; an email is also the email claim")
    token.add_argument("--district", default="kassel", help="district claim ('' for none)")
    token.add_argument("--partner", default=None, help="partner id (role partner)")
    token.add_argument("--ttl", type=float, default=8 * 3600, help="lifetime in seconds")
    token.add_argument("--keys", type=Path, default=None, help="key dir (.lotse/dev-keys)")
    add_dead_letter_commands(sub)
    add_import_commands(sub)
    add_partner_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "partner":
        return run_partner(args)
    if args.command == "dead-letters":
        return asyncio.run(run_dead_letters(args))
    if args.command == "import":
        return run_import(args)
    handlers = {"up": _up, "demo": _demo, "chaos": _chaos, "token": _token}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
