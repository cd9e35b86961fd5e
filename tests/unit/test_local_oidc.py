"""The local OpenID provider, over real HTTP: the portal's code flow with PKCE ends in
an access token the services accept (dev keys, issuer lotse-dev) and an ID token
signed by the provider itself."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
import werkzeug.debug

from lotse_devstack.demo import PEOPLE
from lotse_devstack.oidc import DEV_USERS, LocalIdentityProvider
from lotse_devstack.samples import CASEWORKER
from lotse_devstack.tokens import DevIssuer
from lotse_shared.auth import Principal, Role
from lotse_shared.auth.verifier import TokenVerifier

# the mock's ID token code still uses Authlib's older OpenIDCode API
pytestmark = pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning")

CLIENT_ID = "lotse-portal"
REDIRECT_URI = "http://127.0.0.1:8000/auth/callback"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    return DevIssuer(tmp_path_factory.mktemp("dev-keys")).ensure()


@pytest.fixture(scope="module")
def idp(issuer: DevIssuer) -> Iterator[LocalIdentityProvider]:
    with LocalIdentityProvider(issuer=issuer, port=0) as provider:
        yield provider


@pytest.fixture
def http(idp: LocalIdentityProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=idp.url, follow_redirects=False, timeout=10) as client:
        yield client


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_params(state: str, challenge: str | None) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email",
        "state": state,
        "nonce": secrets.token_urlsafe(8),
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return params


def sign_in(http: httpx.Client, sub: str, challenge: str) -> str:
    """The browser's part: the login form, then choosing a user. Returns the code."""
    state = secrets.token_urlsafe(12)
    params = authorize_params(state, challenge)
    form = http.get("/oauth2/authorize", params=params)
    assert form.status_code == 200, form.text
    assert "<form" in form.text
    for user in DEV_USERS:
        assert user.sub in form.text  # the dev users are offered with one click

    redirect = http.post("/oauth2/authorize", params=params, data={"sub": sub})
    assert redirect.status_code == 302, redirect.text
    location = redirect.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]
    return query["code"][0]


def services_principal(issuer: DevIssuer, access_token: str) -> Principal:
    """What a service makes of the token (its verifier, trusting the dev keys)."""
    verifier = TokenVerifier(issuer="lotse-dev", audience="lotse", jwks_file=issuer.jwks_file)
    return asyncio.run(verifier.principal(access_token))


def redeem(http: httpx.Client, code: str, verifier: str, **extra: str) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        "client_id": CLIENT_ID,
        **extra,
    }
    return http.post("/oauth2/token", data=data)


def test_a_caseworker_signs_in_and_the_services_accept_the_access_token(
    idp: LocalIdentityProvider, issuer: DevIssuer, http: httpx.Client
) -> None:
    verifier, challenge = pkce_pair()
    code = sign_in(http, CASEWORKER, challenge)
    response = redeem(http, code, verifier)  # a public client, like the portal without secret
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["expires_in"] == 15 * 60

    principal = services_principal(issuer, tokens["access_token"])
    assert principal.roles == frozenset({Role.CASEWORKER})
    assert principal.district_id == "kassel"
    assert principal.email == CASEWORKER
    assert principal.user_id == CASEWORKER
    claims: dict[str, Any] = principal.claims
    assert claims["azp"] == CLIENT_ID
    assert claims["name"] == "Petra Schmidt"
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert jwt.get_unverified_header(tokens["access_token"])["alg"] == "ES256"

    # The ID token is the provider's own: its key (discovery → jwks), its URL as issuer
    discovery = http.get("/.well-known/openid-configuration").json()
    assert discovery["issuer"] == idp.url
    assert discovery["jwks_uri"] == idp.jwks_url
    (key,) = jwt.PyJWKClient(discovery["jwks_uri"]).get_signing_keys()  # one key, no kid
    id_claims = jwt.decode(
        tokens["id_token"], key, algorithms=["RS256"], audience=CLIENT_ID, issuer=idp.url
    )
    assert id_claims["sub"] == CASEWORKER
    assert id_claims["email"] == CASEWORKER
    assert id_claims["roles"] == ["caseworker"]  # for the portal's menus
    assert id_claims["district"] == "kassel"

    # userinfo takes the JWT as bearer token as well
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 200
    assert info.json()["email"] == CASEWORKER


def test_a_confidential_client_and_the_other_districts_caseworker(
    issuer: DevIssuer, http: httpx.Client
) -> None:
    other = next(u for u in DEV_USERS if u.district == "werra-meissner")
    verifier, challenge = pkce_pair()
    code = sign_in(http, other.sub, challenge)
    response = http.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(CLIENT_ID, "any-secret-locally"),
    )
    assert response.status_code == 200, response.text
    principal = services_principal(issuer, response.json()["access_token"])
    assert principal.district_id == "werra-meissner"
    assert principal.roles == frozenset({Role.CASEWORKER})


def test_the_demo_mentor_signs_in_as_a_mentor_of_amal(
    issuer: DevIssuer, http: httpx.Client
) -> None:
    """Jürgen Becker is the mentor among Amal Haddad's contacts in the demo: his token
    gives the services a mentor who sees her, and nobody else's people."""
    mentor = next(u for u in DEV_USERS if Role.MENTOR.value in u.roles)
    verifier, challenge = pkce_pair()
    response = redeem(http, sign_in(http, mentor.sub, challenge), verifier)
    assert response.status_code == 200, response.text
    principal = services_principal(issuer, response.json()["access_token"])
    assert principal.roles == frozenset({Role.MENTOR})
    assert principal.role is Role.MENTOR
    assert principal.district_id == "kassel"
    amal = next(p for p in PEOPLE if p["given_name"] == "Amal")
    assert {"role": "mentor", "name": mentor.name, "email": mentor.sub} in amal["contacts"]
    seen = [
        p["given_name"]
        for p in PEOPLE
        if principal.may_access_person(
            p.get("district_id", "kassel"), [c["email"] for c in p["contacts"]]
        )
    ]
    assert "Amal" in seen
    assert len(seen) < len(PEOPLE)


def test_a_wrong_code_verifier_is_refused_and_the_right_one_still_works(
    http: httpx.Client,
) -> None:
    verifier, challenge = pkce_pair()
    code = sign_in(http, CASEWORKER, challenge)
    wrong, _ = pkce_pair()
    refused = redeem(http, code, wrong)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    missing = http.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        auth=(CLIENT_ID, "any-secret-locally"),
    )
    assert missing.status_code == 400, missing.text  # a secret does not replace the verifier
    assert "access_token" not in refused.json()
    assert "access_token" not in missing.json()
    assert redeem(http, code, verifier).status_code == 200
    assert redeem(http, code, verifier).status_code == 400  # a code is good once


def test_pkce_is_required_and_only_s256(http: httpx.Client) -> None:
    def refused(params: dict[str, str]) -> None:
        response = http.get("/oauth2/authorize", params=params)
        # the error goes back to the client, like any authorization error: no form, no code
        assert response.status_code == 302, response.text
        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert query["error"] == ["invalid_request"]
        assert "code" not in query

    refused(authorize_params("s", None))
    _, challenge = pkce_pair()
    refused({**authorize_params("s", challenge), "code_challenge_method": "plain"})
    refused(
        {k: v for k, v in authorize_params("s", challenge).items() if k != "code_challenge_method"}
    )


def test_a_user_added_for_a_test(
    idp: LocalIdentityProvider, issuer: DevIssuer, http: httpx.Client
) -> None:
    idp.add_user(
        "koordination@werra-meissner.example",
        {
            "email": "koordination@werra-meissner.example",
            "roles": ["coordinator"],
            "district": "werra-meissner",
        },
    )
    verifier, challenge = pkce_pair()
    code = sign_in(http, "koordination@werra-meissner.example", challenge)
    token = redeem(http, code, verifier).json()["access_token"]
    principal = services_principal(issuer, token)
    assert principal.roles == frozenset({Role.COORDINATOR})
    assert principal.district_id == "werra-meissner"


def test_the_debugger_is_off_and_the_log_has_no_tokens(
    idp: LocalIdentityProvider, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    assert not idp.app.debug
    assert not isinstance(idp.app.wsgi_app, werkzeug.debug.DebuggedApplication)
    caplog.set_level(logging.DEBUG)
    hint = "eyJhbGciOiJSUzI1NiJ9.secret-looking.hint"
    response = http.get("/oauth2/end_session", params={"id_token_hint": hint})
    assert response.status_code == 200
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any("/oauth2/end_session" in r.getMessage() for r in server_side)
    assert not [r for r in server_side if hint in r.getMessage()]


def test_the_dev_users() -> None:
    assert CASEWORKER in {u.sub for u in DEV_USERS}
    assert {r for u in DEV_USERS for r in u.roles} == {
        "caseworker",
        "mentor",
        "coordinator",
        "admin",
    }
    for user in DEV_USERS:
        assert user.claims()["email"] == user.sub
        assert all(r in Role._value2member_map_ for r in user.roles)
