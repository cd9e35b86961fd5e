"""Bearer tokens: what the verifier accepts and refuses, and how claims become a Principal."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from lotse_devstack.tokens import DevIssuer
from lotse_shared.auth import (
    READERS,
    STAFF,
    InvalidToken,
    KeysUnavailable,
    Principal,
    Role,
    TokenVerifier,
    principal_from_claims,
)

ANNA = "anna@landkreis-kassel.example"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    return DevIssuer(tmp_path_factory.mktemp("keys")).ensure()


@pytest.fixture
def verifier(issuer: DevIssuer) -> TokenVerifier:
    return TokenVerifier(issuer=issuer.issuer, audience=issuer.audience, jwks_file=issuer.jwks_file)


async def test_a_dev_token_gives_the_principal(issuer: DevIssuer, verifier: TokenVerifier):
    token = issuer.token(Role.CASEWORKER, user=ANNA, district="kassel")
    principal = await verifier.principal(token)
    assert principal.user_id == ANNA
    assert principal.roles == {Role.CASEWORKER}
    assert principal.district_id == "kassel"
    assert principal.identity == ANNA


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"iss": "https://evil.example"}, "(?i)issuer"),
        ({"aud": "someone-else"}, "(?i)audience"),
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
    ],
)
async def test_claims_that_do_not_fit_are_refused(
    issuer: DevIssuer, verifier: TokenVerifier, change: dict[str, Any], reason: str
):
    token = issuer.token(Role.COORDINATOR, user=ANNA, extra=change)
    with pytest.raises(InvalidToken, match=reason):
        await verifier.claims(token)


async def test_a_token_without_expiry_is_refused(issuer: DevIssuer, verifier: TokenVerifier):
    claims = jwt.decode(issuer.token(Role.ADMIN, user=ANNA), options={"verify_signature": False})
    del claims["exp"]
    token = jwt.encode(claims, issuer._key(), algorithm="ES256", headers={"kid": issuer.kid})
    with pytest.raises(InvalidToken, match="exp"):
        await verifier.claims(token)


async def test_another_key_is_refused(
    issuer: DevIssuer, verifier: TokenVerifier, tmp_path: Path
) -> None:
    stranger = DevIssuer(tmp_path / "other").ensure()
    with pytest.raises(InvalidToken, match="unknown signing key"):
        await verifier.claims(stranger.token(Role.ADMIN, user=ANNA))
    # the same kid as ours, signed with another key: the signature fails
    claims = jwt.decode(stranger.token(Role.ADMIN, user=ANNA), options={"verify_signature": False})
    forged = jwt.encode(claims, stranger._key(), algorithm="ES256", headers={"kid": issuer.kid})
    with pytest.raises(InvalidToken, match="Signature"):
        await verifier.claims(forged)


async def test_a_tampered_payload_is_refused(issuer: DevIssuer, verifier: TokenVerifier):
    header, payload, signature = issuer.token(Role.CASEWORKER, user=ANNA).split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["roles"] = ["admin"]
    changed = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    with pytest.raises(InvalidToken):
        await verifier.claims(f"{header}.{changed}.{signature}")


async def test_symmetric_and_unsigned_tokens_are_refused(
    issuer: DevIssuer, verifier: TokenVerifier
):
    claims = jwt.decode(issuer.token(Role.ADMIN, user=ANNA), options={"verify_signature": False})
    # a shared-secret token is refused before any key is looked at (no alg confusion)
    hs = jwt.encode(claims, "a-shared-secret-of-32-bytes-or-more!", algorithm="HS256")
    with pytest.raises(InvalidToken, match="not accepted"):
        await verifier.claims(hs)
    unsigned = jwt.encode(claims, "", algorithm="none")
    with pytest.raises(InvalidToken, match="not accepted"):
        await verifier.claims(unsigned)
    with pytest.raises(InvalidToken, match="malformed"):
        await verifier.claims("not-a-jwt")


async def test_rsa_keys_from_a_jwks_work_too(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="rsa-1", alg="RS256", use="sig")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    verifier = TokenVerifier(issuer="kc", audience="lotse", jwks_file=tmp_path / "jwks.json")
    now = int(time.time())
    claims = {"iss": "kc", "aud": "lotse", "sub": "u1", "iat": now, "exp": now + 60}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "rsa-1"})
    assert (await verifier.claims(token))["sub"] == "u1"


def test_keycloak_claims_shape() -> None:
    # what Keycloak puts into an access token: realm roles, client roles, a user
    # attribute mapped to a claim (as a list when "multivalued" is on)
    claims = {
        "iss": "http://keycloak:8080/realms/lotse",
        "aud": ["lotse", "account"],
        "sub": "8d3c7c1e-0000-4000-8000-000000000001",
        "azp": "lotse",
        "preferred_username": "anna",
        "email": ANNA,
        "realm_access": {"roles": ["offline_access", "default-roles-lotse", "caseworker"]},
        "resource_access": {"lotse": {"roles": ["coordinator"]}, "account": {"roles": ["x"]}},
        "district": ["kassel"],
    }
    principal = principal_from_claims(claims, audience="lotse")
    assert principal.roles == {Role.CASEWORKER, Role.COORDINATOR}
    assert principal.role is Role.COORDINATOR
    assert principal.district_id == "kassel"
    assert principal.user_id == ANNA
    with pytest.raises(InvalidToken, match="more than one district"):
        principal_from_claims({**claims, "district": ["kassel", "fulda"]}, audience="lotse")
    bare = principal_from_claims({"sub": "svc", "roles": "operator"}, audience="lotse")
    assert bare.roles == {Role.OPERATOR}
    assert bare.district_id is None


def _p(role: Role, district: str | None = "kassel", email: str = ANNA) -> Principal:
    return Principal(user_id=email, roles=frozenset({role}), district_id=district, email=email)


def test_who_sees_a_person() -> None:
    contacts = [ANNA.upper(), "mentor@example.org"]
    assert _p(Role.CASEWORKER).may_access_person("kassel", contacts)
    assert not _p(Role.CASEWORKER, email="bob@x.example").may_access_person("kassel", contacts)
    assert not _p(Role.CASEWORKER).may_access_person("fulda", contacts)
    assert _p(Role.COORDINATOR, email="c@x.example").may_access_person("kassel", contacts)
    assert not _p(Role.COORDINATOR).may_access_person("fulda", contacts)
    assert _p(Role.ADMIN, email="a@x.example").may_access_person("kassel", [])
    assert not _p(Role.PARTNER).may_access_person("kassel", contacts)
    assert not _p(Role.OPERATOR).may_access_person("kassel", contacts)
    assert not _p(Role.COORDINATOR, district=None).may_access_person("kassel", contacts)


def test_a_mentor_sees_the_people_they_accompany_and_writes_nothing() -> None:
    """Issue #13: a mentor (Berufspate, Integrationslotse) is scoped like a caseworker,
    by their email among the person's contacts, and never district-wide."""
    contacts = ["petra@x.example", "MENTOR@example.org"]
    mentor = _p(Role.MENTOR, email="mentor@example.org")
    assert mentor.may_access_person("kassel", contacts)
    assert not mentor.may_access_person("fulda", contacts)
    assert not _p(Role.MENTOR, email="other@example.org").may_access_person("kassel", contacts)
    assert not _p(Role.MENTOR, district=None).may_access_person("kassel", contacts)
    assert not mentor.district_wide
    assert mentor.sees_own_people
    assert mentor.role is Role.MENTOR
    assert Role.MENTOR in READERS
    assert Role.MENTOR not in STAFF  # every write route requires STAFF
    assert not mentor.has_any(STAFF)
    assert set(STAFF) < set(READERS)
    # a mentor who is also a coordinator: the wider role decides
    both = Principal(
        user_id="k@x.example",
        roles=frozenset({Role.MENTOR, Role.COORDINATOR}),
        district_id="kassel",
        email="k@x.example",
    )
    assert both.may_access_person("kassel", [])
    assert both.role is Role.COORDINATOR


def test_a_mentor_token_gives_the_mentor_role() -> None:
    principal = principal_from_claims(
        {
            "sub": "u1",
            "email": "j.becker@paten.example",
            "district": "kassel",
            "realm_access": {"roles": ["mentor", "offline_access"]},
        },
        audience="lotse",
    )
    assert principal.roles == {Role.MENTOR}


@pytest.fixture
def jwks_server(issuer: DevIssuer) -> Iterator[str]:
    """The JWKS served over HTTP, as an identity provider publishes it."""
    body = issuer.jwks_file.read_bytes()
    served: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/realms/lotse/protocol/openid-connect/certs"
    server.shutdown()
    server.server_close()
    assert len(served) == 1, served  # fetched once, then cached


async def test_keys_from_a_jwks_url_are_fetched_once(issuer: DevIssuer, jwks_server: str):
    verifier = TokenVerifier(issuer=issuer.issuer, audience=issuer.audience, jwks_url=jwks_server)
    for role in (Role.CASEWORKER, Role.ADMIN):
        principal = await verifier.principal(issuer.token(role, user=ANNA))
        assert principal.roles == {role}


async def test_an_unreachable_issuer_is_not_the_callers_fault(issuer: DevIssuer):
    verifier = TokenVerifier(
        issuer=issuer.issuer, audience=issuer.audience, jwks_url="http://127.0.0.1:9/certs"
    )
    with pytest.raises(KeysUnavailable):
        await verifier.claims(issuer.token(Role.CASEWORKER, user=ANNA))


def test_lotse_token_makes_private_keys_once_and_keeps_them_out_of_git(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lotse_devstack.cli import main

    monkeypatch.setenv("LOTSE_DEV_KEYS", str(tmp_path / "keys"))
    args = ["token", "--role", "coordinator", "--district", "kassel", "--user", ANNA]
    assert main(args) == 0
    first = capsys.readouterr().out.strip()
    assert main(args) == 0
    second = capsys.readouterr().out.strip()
    issuer = DevIssuer(tmp_path / "keys")
    assert jwt.get_unverified_header(first)["kid"] == jwt.get_unverified_header(second)["kid"]
    assert issuer.key_file.stat().st_mode & 0o077 == 0  # readable by its owner only
    claims = jwt.decode(first, options={"verify_signature": False})
    assert (claims["roles"], claims["district"], claims["email"]) == (
        ["coordinator"],
        "kassel",
        ANNA,
    )
    root = Path(__file__).resolve().parents[2]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".lotse/dev-keys/signing-key.pem"], cwd=root, check=False
    )
    assert ignored.returncode == 0, "the default key directory must be git-ignored"


async def test_lotse_token_gives_a_mentor_token_the_services_accept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lotse_devstack.cli import main

    monkeypatch.setenv("LOTSE_DEV_KEYS", str(tmp_path / "keys"))
    mentor = "j.becker@berufspaten.example"
    assert main(["token", "--role", "mentor", "--district", "kassel", "--user", mentor]) == 0
    token = capsys.readouterr().out.strip()
    issuer = DevIssuer(tmp_path / "keys")
    verifier = TokenVerifier(
        issuer=issuer.issuer, audience=issuer.audience, jwks_file=issuer.jwks_file
    )
    principal = await verifier.principal(token)
    assert (principal.roles, principal.district_id, principal.identity) == (
        {Role.MENTOR},
        "kassel",
        mentor,
    )


def test_audit_outcomes_and_no_way_to_change_a_row() -> None:
    from lotse_shared.auth.audit import AuditLog, outcome_of

    assert [outcome_of(s) for s in (200, 201, 303, 401, 403, 404, 409, 422, 503)] == [
        "allowed",
        "allowed",
        "allowed",
        "refused",
        "refused",
        "refused",
        "failed",
        "failed",
        "failed",
    ]
    public = {name for name in vars(AuditLog) if not name.startswith("_")}
    assert public == {"ensure_indexes", "entry", "append", "query"}  # append-only
