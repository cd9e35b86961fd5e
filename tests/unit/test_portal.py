"""The portal's own logic, without a browser or services: the session cookie, CSRF, where
a sign-in may lead back to, the services' errors at their fields, the caseload's filters,
and that every German text on a page has its English."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from lotse_portal import forms, i18n
from lotse_portal.backend import FieldError, field_errors
from lotse_portal.bootstrap import Overrides, create_app
from lotse_portal.sessions import COOKIE, EncryptedSessionMiddleware, csrf_token, csrf_valid
from lotse_portal.settings import PortalSettings
from lotse_portal.signin import NeedsSignIn, current_user, safe_next
from lotse_portal.views import caseload, parts, person

CASEWORKER_EMAIL = "petra.schmidt@landkreis-kassel.example"
TEMPLATES = Path(__file__).resolve().parents[2] / "services/portal/lotse_portal/templates"


def session_app(key: str, max_age_s: int = 3600) -> FastAPI:
    app = FastAPI()

    @app.get("/put")
    async def put(request: Request, value: str) -> JSONResponse:
        request.session["value"] = value
        return JSONResponse({})

    @app.get("/get")
    async def get(request: Request) -> JSONResponse:
        return JSONResponse({"value": request.session.get("value")})

    @app.get("/clear")
    async def clear(request: Request) -> JSONResponse:
        request.session.clear()
        return JSONResponse({})

    app.add_middleware(EncryptedSessionMiddleware, key=key, max_age_s=max_age_s)
    return app


async def test_the_session_cookie_is_encrypted_httponly_lax_and_refuses_a_forgery() -> None:
    key = Fernet.generate_key().decode()
    transport = httpx.ASGITransport(app=session_app(key))
    async with httpx.AsyncClient(transport=transport, base_url="http://portal") as client:
        r = await client.get("/put", params={"value": "petra@kassel.example"})
        header = r.headers["set-cookie"]
        assert "HttpOnly" in header
        assert "SameSite=Lax" in header
        assert "Secure" not in header  # plain http: a Secure cookie would never come back
        assert "petra" not in header  # encrypted, not only signed
        assert (await client.get("/get")).json() == {"value": "petra@kassel.example"}

        value = client.cookies[COOKIE]
        client.cookies.set(COOKIE, value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
        assert (await client.get("/get")).json() == {"value": None}

        # another portal's key (or a rotated one) reads nothing
        client.cookies.set(
            COOKIE, Fernet(Fernet.generate_key()).encrypt(b'{"value": "x"}').decode()
        )
        assert (await client.get("/get")).json() == {"value": None}


async def test_over_https_the_session_cookie_is_secure_and_clearing_it_deletes_it() -> None:
    key = Fernet.generate_key().decode()
    transport = httpx.ASGITransport(app=session_app(key))
    async with httpx.AsyncClient(transport=transport, base_url="https://portal") as client:
        r = await client.get("/put", params={"value": "v"})
        assert "; Secure" in r.headers["set-cookie"]
        r = await client.get("/clear")
        assert "Max-Age=0" in r.headers["set-cookie"]


async def test_an_old_session_cookie_has_run_out() -> None:
    key = Fernet.generate_key()
    old = Fernet(key).encrypt_at_time(b'{"value": "v"}', int(time.time()) - 7200).decode()
    transport = httpx.ASGITransport(app=session_app(key.decode(), max_age_s=3600))
    async with httpx.AsyncClient(transport=transport, base_url="http://portal") as client:
        client.cookies.set(COOKIE, old)
        assert (await client.get("/get")).json() == {"value": None}


def test_csrf_token_is_kept_per_session_and_checked_in_constant_time() -> None:
    session: dict[str, Any] = {}
    token = csrf_token(session)
    assert csrf_token(session) == token
    assert csrf_valid(session, token)
    assert not csrf_valid(session, token + "x")
    assert not csrf_valid(session, None)
    assert not csrf_valid({}, token)


@pytest.mark.parametrize(
    ("wanted", "back_to"),
    [
        ("/people/1?offset=50", "/people/1?offset=50"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        (None, "/"),
        ("", "/"),
    ],
)
def test_after_sign_in_only_a_page_of_the_portal_is_a_place_to_return_to(
    wanted: str | None, back_to: str
) -> None:
    assert safe_next(wanted) == back_to


def _request(session: dict[str, Any], path: str = "/people/42", query: str = "") -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query.encode(),
        "headers": [],
        "session": session,
        "scheme": "http",
        "server": ("portal", 80),
        "app": FastAPI(),
    }
    return Request(scope)


async def test_a_session_whose_token_has_run_out_sends_the_user_to_sign_in_and_back() -> None:
    user = {
        "sub": "p",
        "email": "p@k.example",
        "name": "P",
        "roles": ["caseworker"],
        "district": "kassel",
        "access_token": "t",
        "expires_at": time.time() + 3600,
    }
    assert (await current_user(_request({"user": user}))).roles == {"caseworker"}
    # run out, and no refresh token to renew it with
    with pytest.raises(NeedsSignIn) as expired:
        await current_user(_request({"user": {**user, "expires_at": time.time() + 5}}, query="x=1"))
    assert expired.value.next_url == "/people/42?x=1"
    with pytest.raises(NeedsSignIn):
        await current_user(_request({}))


def test_the_services_refusals_land_at_their_fields_in_german() -> None:
    body = {
        "type": "about:blank",
        "title": "Unprocessable Content",
        "status": 422,
        "detail": "given_name: Field required; ...",
        "instance": "/people",
        "errors": [
            {
                "in": "body",
                "field": "given_name",
                "pointer": "#/given_name",
                "reason": "Field required",
                "code": "missing",
            },
            {
                "in": "body",
                "field": "contacts.0.email",
                "pointer": "#/contacts/0/email",
                "reason": "bad",
                "code": "value_error",
            },
            {
                "in": "body",
                "field": "",
                "pointer": "#",
                "reason": "work_permission: needs_approval does not fit",
                "code": "value_error",
            },
        ],
    }
    errors = field_errors(422, body)
    assert [e.field for e in errors] == ["given_name", "contacts.0.email", "work_permission"]
    at = forms.errors_at_fields(errors, "de")
    assert at["given_name"] == "Bitte ausfüllen."
    assert at["caseworker_email"] == "bad"
    assert at["work_permission"] == "needs_approval does not fit"
    assert forms.errors_at_fields(errors, "en")["given_name"] == "Required."
    conflict = {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "case is closed",
    }
    assert field_errors(409, conflict) == [FieldError("", "case is closed", "conflict")]


def test_the_person_form_becomes_intakes_body_and_blanks_are_left_for_intake_to_name() -> None:
    values = forms.blank_form("petra@k.example", "Petra Schmidt")
    values.update(
        given_name="Samira", sectors_of_interest=["pflege", "no-such"], consent=["matching"]
    )
    body = forms.person_body(values, "kassel")
    assert body["birth_year"] is None  # intake answers "birth_year: required"
    assert body["sectors_of_interest"] == ["pflege"]
    assert body["consent"] == {
        "matching": True,
        "share_with_employers": False,
        "email_notifications": False,
    }
    assert body["contacts"][0] == {
        "role": "caseworker",
        "name": "Petra Schmidt",
        "email": "petra@k.example",
    }
    assert body["district_id"] == "kassel"


def _row(**kw: Any) -> caseload.CaseloadRow:
    base: dict[str, Any] = dict(
        person_id="1",
        name="A",
        municipality="Kassel",
        level="A2",
        forecast=None,
        course=None,
        attendance_rate=None,
        open_suggestions=0,
        best_score=None,
        stage=None,
        unread=0,
        flags=[],
    )
    return caseload.CaseloadRow(**{**base, **kw})


def test_caseload_filters_by_level_stage_and_flag_and_sorts() -> None:
    rows = [
        _row(name="Bea", level="B1", stage="interview", flags=["attendance_at_risk"], unread=1),
        _row(name="Ali", level="A1", unread=3),
        _row(name="Cem", level=None, stage="job_started"),
    ]
    f = caseload.CaseloadFilter
    assert [r.name for r in rows if caseload.matches(r, f(level="A2"))] == ["Bea"]
    assert [r.name for r in rows if caseload.matches(r, f(stage="none"))] == ["Ali"]
    assert [r.name for r in rows if caseload.matches(r, f(flag="attendance_at_risk"))] == ["Bea"]
    assert [r.name for r in sorted(rows, key=caseload.sort_key("unread"))] == ["Ali", "Bea", "Cem"]
    assert [r.name for r in sorted(rows, key=caseload.sort_key("stage"))] == ["Cem", "Bea", "Ali"]
    assert parts.best_level("A2", None, "B1") == "B1"


def test_a_case_moves_on_only_to_later_stages() -> None:
    assert person.next_stages({"closed": True, "stage": "proposed"}) == []
    assert person.next_stages({"closed": False, "stage": "proposed"})[0] == "interview"
    assert "interview" not in person.next_stages({"closed": False, "stage": "interview"})
    assert person.next_stages({"closed": False, "stage": "job_started"}) == [
        "employed_3_months",
        "employed_6_months",
    ]


def test_every_german_text_on_a_page_has_its_english() -> None:
    texts: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        source = template.read_text(encoding="utf-8")
        texts |= set(re.findall(r"\bt\(\"([^\"]+)\"\)", source))
        texts |= set(re.findall(r"\bt\('([^']+)'\)", source))
    assert len(texts) > 50
    assert sorted(texts - set(i18n.ENGLISH)) == []


async def test_pages_without_a_session_lead_to_sign_in_and_the_health_check_does_not() -> None:
    settings = PortalSettings(
        oidc_discovery_url="http://127.0.0.1:9/.well-known/openid-configuration"
    )
    app = create_app(settings, Overrides())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://portal") as client:
        for path in ("/caseload", "/people/new", "/inbox", "/openings", "/figures"):
            r = await client.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"] == f"/auth/login?next={path}"
        assert (await client.get("/healthz")).json()["status"] == "ok"
        # a form posted without a session changes nothing: sign in first
        r = await client.post("/people/new", data={"given_name": "X"})
        assert r.status_code == 303
        assert r.headers["location"].startswith("/auth/login")


async def test_a_run_out_token_is_renewed_with_the_refresh_token_at_the_real_provider(
    tmp_path: Path,
) -> None:
    """The local OpenID provider (a real one, in a thread) renews the token; the new one
    is what the services accept, and it goes back into the session."""
    from lotse_devstack.oidc import LocalIdentityProvider
    from lotse_devstack.tokens import DevIssuer
    from lotse_portal.signin import PROVIDER, make_oauth
    from lotse_shared.auth.verifier import TokenVerifier
    from tests.unit.test_local_oidc import pkce_pair, redeem, sign_in

    issuer = DevIssuer(tmp_path).ensure()
    with LocalIdentityProvider(issuer=issuer) as idp:
        with httpx.Client(base_url=idp.url) as http:
            verifier, challenge = pkce_pair()
            code = await asyncio.to_thread(sign_in, http, CASEWORKER_EMAIL, challenge)
            tokens = (await asyncio.to_thread(redeem, http, code, verifier)).json()
        assert tokens.get("refresh_token")
        # a confidential client, as with Keycloak (the provider refuses to renew for a public one)
        settings = PortalSettings(
            oidc_discovery_url=idp.discovery_url,
            oidc_client_secret="local",
        )
        app = FastAPI()
        app.state.oidc_client = make_oauth(settings).create_client(PROVIDER)
        session: dict[str, Any] = {
            "user": {
                "sub": CASEWORKER_EMAIL,
                "email": CASEWORKER_EMAIL,
                "name": "Petra Schmidt",
                "roles": ["caseworker"],
                "district": "kassel",
                "access_token": tokens["access_token"],
                "refresh_token": tokens["refresh_token"],
                "expires_at": time.time() - 1,  # run out
            }
        }
        request = _request(session)
        request.scope["app"] = app
        user = await current_user(request)
        assert user.access_token != tokens["access_token"]
        assert session["user"]["access_token"] == user.access_token
        assert session["user"]["expires_at"] > time.time() + 60
        services = TokenVerifier(issuer="lotse-dev", audience="lotse", jwks_file=issuer.jwks_file)
        assert (await services.principal(user.access_token)).email == CASEWORKER_EMAIL

        # a refresh token the provider no longer knows: sign in again
        session["user"].update(refresh_token="revoked", expires_at=time.time() - 1)
        with pytest.raises(NeedsSignIn):
            await current_user(request)
