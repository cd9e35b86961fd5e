"""``lotse partner add|sync|remove|key``: an operator's partner administration.

- ``add ID --district D --publishes 'partner.course.*'``: records the partner in the
  definitions file (``--definitions``, default ``deploy/partners.json``), makes its
  broker user and rights, prints its broker password and an API key, once each;
- ``sync [FILE]``: makes every listed partner's user (new ones get a password,
  printed once; existing ones keep theirs) and sets their rights to the file's;
- ``remove ID``: deletes the broker user and revokes its API keys;
- ``key create ID --district D`` / ``key revoke KEY_ID|ID`` / ``key list``.

Broker: ``LOTSE_RABBIT_ADMIN_URL``/``_USER``/``_PASSWORD``; the events exchange is
``<LOTSE_NAMESPACE>.events``. API keys: ``LOTSE_PARTNER_KEYS_FILE`` (or ``--keys-file``).
A password is read from ``--password-file`` if given, else generated; it is never
written anywhere by this command.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

from lotse_shared.auth.apikeys import KeyFile

from .partners import (
    BrokerAdmin,
    BrokerAdminError,
    Partner,
    PartnerConfigError,
    grant,
    load_definitions,
)

DEFAULT_DEFINITIONS = Path("deploy/partners.json")


def add_partner_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pa = sub.add_parser("partner", help="partners' broker users and API keys")
    pa.add_argument("--namespace", default=os.environ.get("LOTSE_NAMESPACE", "lotse"))
    pa.add_argument(
        "--keys-file",
        type=Path,
        default=Path(os.environ["LOTSE_PARTNER_KEYS_FILE"])
        if os.environ.get("LOTSE_PARTNER_KEYS_FILE")
        else None,
        help="the API keys file the services read (LOTSE_PARTNER_KEYS_FILE)",
    )
    ps = pa.add_subparsers(dest="action", required=True)
    add = ps.add_parser("add", help="add (or update) a partner and make its broker user")
    add.add_argument("partner_id")
    add.add_argument("--district", required=True)
    add.add_argument(
        "--publishes",
        action="append",
        required=True,
        help="routing key or prefix with '*' (partner.course.*); repeat for more",
    )
    add.add_argument("--name", default="")
    add.add_argument("--definitions", type=Path, default=DEFAULT_DEFINITIONS)
    add.add_argument("--password-file", type=Path, default=None)
    add.add_argument("--no-api-key", action="store_true", help="issue no API key")
    sync = ps.add_parser("sync", help="make the broker's partners match a definitions file")
    sync.add_argument("definitions", type=Path, nargs="?", default=DEFAULT_DEFINITIONS)
    rm = ps.add_parser("remove", help="delete a partner's broker user, revoke its API keys")
    rm.add_argument("partner_id")
    key = ps.add_parser("key", help="create, revoke or list API keys")
    ks = key.add_subparsers(dest="key_action", required=True)
    kc = ks.add_parser("create", help="issue an API key (printed once; only its hash is kept)")
    kc.add_argument("partner_id")
    kc.add_argument("--district", required=True)
    kr = ks.add_parser("revoke", help="revoke one key (by key id) or all keys of a partner")
    kr.add_argument("key_id_or_partner")
    ks.add_parser("list", help="key ids, partners, created, revoked (no secrets)")


def _password(path: Path | None) -> tuple[str, bool]:
    if path is not None:
        return path.read_text().strip(), False
    return secrets.token_urlsafe(24), True


def _ensure_user(admin: BrokerAdmin, partner: Partner, password_file: Path | None) -> None:
    if admin.user_exists(partner.id) and password_file is None:
        print(f"{partner.id}: broker user exists; password unchanged")
        return
    password, generated = _password(password_file)
    admin.put_user(partner.id, password)
    if generated:
        print(f"{partner.id}: broker password (shown once, store it now): {password}")
    else:
        print(f"{partner.id}: broker user set with the password from {password_file}")


def _grant(admin: BrokerAdmin, partner: Partner, namespace: str) -> None:
    exchange = f"{namespace}.events"
    grant(admin, partner, events_exchange=exchange)
    allowed = ", ".join(partner.publishes)
    print(f"{partner.id}: may publish {allowed} on {exchange} ({partner.write_regex})")


def _keys(args: argparse.Namespace) -> KeyFile:
    if args.keys_file is None:
        raise PartnerConfigError("set LOTSE_PARTNER_KEYS_FILE or --keys-file for API keys")
    return KeyFile(args.keys_file)


def _issue_key(args: argparse.Namespace, partner_id: str, district: str) -> None:
    record, key = _keys(args).create(partner_id, district)
    print(f"{partner_id}: API key {record.key_id} (shown once, store it now): {key}")


def _record(definitions: Path, partner: Partner) -> None:
    data = json.loads(definitions.read_text()) if definitions.exists() else {"partners": []}
    entry = {
        "id": partner.id,
        "name": partner.name,
        "district": partner.district,
        "publishes": list(partner.publishes),
    }
    others = [p for p in data.get("partners", []) if p.get("id") != partner.id]
    data["partners"] = [*others, entry]
    definitions.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def run_partner(args: argparse.Namespace) -> int:
    admin = BrokerAdmin.from_env()
    try:
        if args.action == "add":
            partner = Partner(
                id=args.partner_id,
                district=args.district,
                publishes=tuple(args.publishes),
                name=args.name,
            )
            _ensure_user(admin, partner, args.password_file)
            _grant(admin, partner, args.namespace)
            _record(args.definitions, partner)
            print(f"{partner.id}: recorded in {args.definitions}")
            if not args.no_api_key and args.keys_file is not None:
                _issue_key(args, partner.id, partner.district)
        elif args.action == "sync":
            for partner in load_definitions(args.definitions):
                _ensure_user(admin, partner, None)
                _grant(admin, partner, args.namespace)
        elif args.action == "remove":
            admin.delete_user(args.partner_id)
            print(f"{args.partner_id}: broker user deleted")
            if args.keys_file is not None:
                revoked = _keys(args).revoke(args.partner_id)
                print(f"{args.partner_id}: {len(revoked)} API key(s) revoked")
        elif args.key_action == "create":
            _issue_key(args, args.partner_id, args.district)
        elif args.key_action == "revoke":
            revoked = _keys(args).revoke(args.key_id_or_partner)
            for k in revoked:
                print(f"revoked {k.key_id} of {k.partner_id}")
            if not revoked:
                print(f"no active key {args.key_id_or_partner!r}", file=sys.stderr)
                return 1
        else:
            for k in _keys(args).keys().values():
                state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
                print(f"{k.key_id}  {k.partner_id:<24} {k.district:<10} {k.created_at}  {state}")
    except (PartnerConfigError, BrokerAdminError, OSError) as e:
        print(f"lotse partner: {e}", file=sys.stderr)
        return 2
    return 0
