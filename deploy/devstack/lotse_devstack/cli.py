"""The ``lotse`` command: ``lotse up`` runs the stack, ``lotse demo`` runs the main flow."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import uuid

from lotse_shared.ops.__main__ import add_dead_letter_commands, run_dead_letters

from .cleanup import delete_namespace
from .stack import SERVICES, LocalStack, StackConfig


def _up(args: argparse.Namespace) -> int:
    config = StackConfig.from_env()
    with LocalStack(config) as stack:
        print("Lotse is running:")
        for service in SERVICES:
            print(f"  {service:<14} {stack.url(service)}  (docs: /docs, events: /asyncapi)")
        print(f"  mongodb        {stack.mongo_url}")
        print(f"  smtp           {stack.smtp[0]}:{stack.smtp[1]}" if stack.smtp else "")
        print(f"  logs           {stack.log_dir}")
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


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="lotse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the stack and keep it running until Ctrl-C")
    demo = sub.add_parser("demo", help="start the stack, run the main flow, stop")
    demo.add_argument(
        "--keep-namespace",
        dest="fresh_namespace",
        action="store_false",
        help="use LOTSE_NAMESPACE instead of a fresh one (queues and databases are reused)",
    )
    add_dead_letter_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "dead-letters":
        return asyncio.run(run_dead_letters(args))
    handlers = {"up": _up, "demo": _demo}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
