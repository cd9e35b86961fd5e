"""A local OpenID Connect provider for ``make up``, ``make demo`` and the tests.

It is ``oidc-provider-mock`` (a Flask app on Authlib: a login form that lists the dev
users, discovery, JWKS, userinfo, end_session), with two changes so it behaves like
the Keycloak realm in ``deploy/keycloak``:

- **Access tokens are JWTs the services accept.** The mock's own access tokens are
  opaque strings and it has no introspection endpoint, so a service could not check
  them. Here they are signed with the dev keys (:class:`~lotse_devstack.tokens.DevIssuer`,
  ES256, issuer ``lotse-dev``, audience ``lotse``), the same keys ``lotse token`` uses:
  the services keep trusting one issuer locally (``LOTSE_AUTH_JWKS_FILE``) and verify
  a signed-in user's token exactly as they verify Keycloak's. ID tokens stay the
  mock's (RS256, its own key at ``/jwks``, issuer = its URL); the portal verifies them
  through discovery.
- **PKCE (S256) is enforced.** The mock registers no PKCE extension and would accept
  any ``code_verifier``. Every authorization request must carry a
  ``code_challenge`` with ``code_challenge_method=S256`` (like the Keycloak client's
  ``pkce.code.challenge.method``), and the token request must bring the matching
  ``code_verifier``. A public client (no secret, ``token_endpoint_auth_method=none``)
  is accepted because PKCE protects its code.

The mock's interactive debugger and debug mode are switched off, and the request log
names paths only (no query strings: ``end_session`` carries ``id_token_hint``).

``python -m lotse_devstack.oidc --port 8009`` runs it alone in the foreground.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import secrets
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import flask
import werkzeug.debug
import werkzeug.serving
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge

from lotse_shared.auth import Role

from .tokens import DevIssuer, default_dir

# Authlib shows its deprecation warnings always; the mock uses APIs it deprecates
# (authlib.jose, OpenIDCode.get_jwt_config), which is not ours to fix: keep them off
# the operator's terminal.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    import oidc_provider_mock
    from oidc_provider_mock import _app as mock_app
warnings.filterwarnings("ignore", "get_jwt_config", AuthlibDeprecationWarning)

_log = logging.getLogger(__name__)

DEFAULT_ACCESS_TOKEN_TTL_S = 15 * 60
# Claims of a user that travel into the access token (besides roles)
_PROFILE_CLAIMS = ("email", "email_verified", "name", "preferred_username", "district")
_PARTNER_CLAIM = "partner_id"


@dataclass(frozen=True)
class DevUser:
    """A user of the local provider; ``sub`` is the e-mail address."""

    sub: str
    name: str
    roles: tuple[str, ...]
    district: str | None
    note: str = ""

    @property
    def email(self) -> str:
        return self.sub

    @property
    def username(self) -> str:
        return self.sub.split("@", 1)[0]

    def claims(self) -> dict[str, object]:
        claims: dict[str, object] = {
            "email": self.email,
            "email_verified": True,
            "name": self.name,
            "preferred_username": self.username,
            "roles": list(self.roles),
        }
        if self.district is not None:
            claims["district"] = self.district
        return claims


DEV_USERS: tuple[DevUser, ...] = (
    DevUser(
        "petra.schmidt@landkreis-kassel.example",
        "Petra Schmidt",
        (Role.CASEWORKER.value,),
        "kassel",
        "caseworker of the demo's people",
    ),
    DevUser(
        "jonas.weber@landkreis-kassel.example",
        "Jonas Weber",
        (Role.CASEWORKER.value,),
        "kassel",
        "caseworker with no cases in the demo",
    ),
    DevUser(
        "bildungskoordination@landkreis-kassel.example",
        "Bildungskoordination Kassel",
        (Role.COORDINATOR.value,),
        "kassel",
        "sees every person of the district",
    ),
    DevUser(
        "j.becker@berufspaten.example",
        "Jürgen Becker",
        (Role.MENTOR.value,),
        "kassel",
        "mentor (Berufspate) of the demo's Amal Haddad: reads, changes nothing",
    ),
    DevUser(
        "admin@landkreis-kassel.example",
        "Administration Kassel",
        (Role.ADMIN.value,),
        "kassel",
        "administration and the audit log",
    ),
    DevUser(
        "anna.becker@werra-meissner.example",
        "Anna Becker",
        (Role.CASEWORKER.value,),
        "werra-meissner",
        "caseworker of another district",
    ),
)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


class _S256Pkce(CodeChallenge):
    """Authlib's PKCE extension, S256 only, remembering each code's challenge.

    The mock's stored authorization code has no room for the challenge, so this
    extension keeps it beside the code (saved with it, dropped when the code is used).
    """

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    _UNUSED_CODE_KEPT_S = 600.0

    def __init__(self, *, required: bool) -> None:
        super().__init__(required=True)  # a public client must always send a verifier
        self.required_at_authorization = required
        self._lock = threading.Lock()
        self._challenges: dict[str, tuple[str, str, float]] = {}

    def __call__(self, grant: Any) -> None:
        super().__call__(grant)
        # PKCE protects a public client's code, so it may redeem it without a secret
        grant.TOKEN_ENDPOINT_AUTH_METHODS = [*grant.TOKEN_ENDPOINT_AUTH_METHODS, "none"]
        save, delete = grant.save_authorization_code, grant.delete_authorization_code

        def save_with_challenge(code: str, request: Any) -> Any:
            data = request.payload.data
            challenge = data.get("code_challenge")
            now = time.monotonic()
            with self._lock:
                for stale in [
                    c
                    for c, (_, _, t) in self._challenges.items()
                    if now - t > self._UNUSED_CODE_KEPT_S
                ]:
                    del self._challenges[stale]
                if challenge:
                    method = data.get("code_challenge_method") or self.DEFAULT_CODE_CHALLENGE_METHOD
                    self._challenges[code] = (challenge, method, now)
            return save(code, request)

        def delete_with_challenge(authorization_code: Any) -> Any:
            with self._lock:
                self._challenges.pop(authorization_code.code, None)
            return delete(authorization_code)

        grant.save_authorization_code = save_with_challenge
        grant.delete_authorization_code = delete_with_challenge

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if self.required_at_authorization and not data.get("code_challenge"):
            raise InvalidRequestError(
                "PKCE is required: send code_challenge with code_challenge_method=S256"
            )
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def _entry(self, authorization_code: Any) -> tuple[str, str, float] | None:
        with self._lock:
            return self._challenges.get(authorization_code.code)

    def get_authorization_code_challenge(self, authorization_code: Any) -> str | None:
        entry = self._entry(authorization_code)
        return entry[0] if entry else None

    def get_authorization_code_challenge_method(self, authorization_code: Any) -> str | None:
        entry = self._entry(authorization_code)
        return entry[1] if entry else None


class _PathOnlyRequestHandler(werkzeug.serving.WSGIRequestHandler):
    """Logs method, path and status to this module's logger: never a query string
    (``id_token_hint``, ``code``), and nothing on stderr unless logging is set up."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = getattr(self, "path", "").split("?", 1)[0]
        _log.info("%s %s %s", getattr(self, "command", "-"), path, code)

    def log(self, type: str, message: str, *args: Any) -> None:
        level = logging.ERROR if type == "error" else logging.INFO
        _log.log(level, message.rstrip(), *args)


class LocalIdentityProvider:
    """oidc-provider-mock on 127.0.0.1 in a background thread (``with`` or start/stop).

    >>> with LocalIdentityProvider(issuer=DevIssuer(path).ensure(), port=0) as idp:
    ...     idp.discovery_url   # the portal's LOTSE_OIDC_DISCOVERY_URL
    """

    def __init__(
        self,
        *,
        issuer: DevIssuer,
        host: str = "127.0.0.1",
        port: int = 0,
        access_token_ttl_s: float = DEFAULT_ACCESS_TOKEN_TTL_S,
        users: Iterable[DevUser] = DEV_USERS,
        require_pkce: bool = True,
    ) -> None:
        self.issuer = issuer.ensure()
        self.host = host
        self._requested_port = port
        self.access_token_ttl_s = int(access_token_ttl_s)
        self.users = tuple(users)
        self._server: werkzeug.serving.BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.app = self._make_app(require_pkce)

    # -- the Flask app ---------------------------------------------------------

    def _make_app(self, require_pkce: bool) -> flask.Flask:
        # The mock's own import name: Flask finds the package's templates through it
        app = flask.Flask(mock_app.__name__)
        app.secret_key = secrets.token_bytes(16)
        app.config["OAUTH2_ACCESS_TOKEN_GENERATOR"] = self._access_token
        oidc_provider_mock.init_app(
            app,
            require_nonce=False,
            issue_refresh_token=True,
            access_token_max_age=timedelta(seconds=self.access_token_ttl_s),
            user_claims=[oidc_provider_mock.User(sub=u.sub, claims=u.claims()) for u in self.users],
        )
        # init_app turns on debug mode and the interactive (code-executing) debugger
        app.debug = False
        if isinstance(app.wsgi_app, werkzeug.debug.DebuggedApplication):
            app.wsgi_app = app.wsgi_app.app  # type: ignore[assignment]

        # The mock builds its AuthorizationServer and storage inside the blueprint's
        # setup and hands them to requests through flask.g: run its before_request once.
        with app.test_request_context():
            app.preprocess_request()
            server = flask.g._authlib_authorization_server
            self._storage = flask.g.oidc_provider_mock_storage

        # The same lifetime for tokens from a code and from a refresh token; and make
        # sure our generator is the one in use (setup read the config before).
        app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {
            "authorization_code": self.access_token_ttl_s,
            "refresh_token": self.access_token_ttl_s,
        }
        app.config["OAUTH2_ACCESS_TOKEN_GENERATOR"] = self._access_token
        server.load_config(app.config)

        # Register PKCE on the mock's authorization code grant (one extension list is
        # shared by the authorization and the token endpoint's registration).
        pkce = _S256Pkce(required=require_pkce)
        lists = {
            id(extensions): extensions
            for grant_cls, extensions in [*server._authorization_grants, *server._token_grants]
            if grant_cls is mock_app.AuthorizationCodeGrant
        }
        if len(lists) != 1:
            raise RuntimeError("oidc-provider-mock registers its grants differently: PKCE not set")
        next(iter(lists.values())).append(pkce)
        return app

    def _access_token(self, client: Any, grant_type: str, user: Any, scope: str) -> str:
        """An access token for the services: a JWT signed with the dev keys."""
        claims: Mapping[str, object] = user.claims
        now = int(time.time())
        token: dict[str, object] = {
            "iss": self.issuer.issuer,
            "aud": self.issuer.audience,
            "sub": user.sub,
            "iat": now,
            "exp": now + self.access_token_ttl_s,
            "jti": str(uuid.uuid4()),
            "azp": client.get_client_id(),
            "client_id": client.get_client_id(),
            "scope": scope or "",
            "roles": _strings(claims.get("roles")),
        }
        for name in _PROFILE_CLAIMS:
            if name in claims:
                token[name] = claims[name]
        if isinstance(claims.get(_PARTNER_CLAIM), str):
            token[_PARTNER_CLAIM] = claims[_PARTNER_CLAIM]
        return self.issuer.sign(token)

    def add_user(self, sub: str, claims: Mapping[str, object]) -> None:
        """Add or replace a user (like ``PUT /users/{sub}``); the login form accepts
        any ``sub`` typed in, and it is listed there once used."""
        self._storage.store_user(oidc_provider_mock.User(sub=sub, claims=dict(claims)))

    # -- the server ------------------------------------------------------------

    def _bind(self) -> werkzeug.serving.BaseWSGIServer:
        if self._server is not None:
            raise RuntimeError("the identity provider is running already")
        self._server = werkzeug.serving.make_server(
            self.host,
            self._requested_port,
            self.app,
            threaded=True,
            request_handler=_PathOnlyRequestHandler,
        )
        return self._server

    def start(self) -> LocalIdentityProvider:
        server = self._bind()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="oidc", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        if thread is not None:
            server.shutdown()
            thread.join(5)
        server.server_close()
        self._server = self._thread = None

    def serve_forever(
        self, on_ready: Callable[[LocalIdentityProvider], None] | None = None
    ) -> None:
        """Run in the foreground until interrupted; ``on_ready`` once the port is bound."""
        server = self._bind()
        try:
            if on_ready is not None:
                on_ready(self)
            server.serve_forever()
        finally:
            server.server_close()
            self._server = None

    def __enter__(self) -> LocalIdentityProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the identity provider is not running")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """The provider's issuer URL (the ``iss`` of its ID tokens)."""
        return f"http://{self.host}:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        """The keys of the ID tokens (the access tokens' keys are the dev JWKS file)."""
        return f"{self.url}/jwks"

    def service_env(self) -> dict[str, str]:
        """What a service needs to accept this provider's access tokens."""
        return self.issuer.service_env()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lotse_devstack.oidc",
        description="Run the local OpenID Connect provider (dev users, access tokens "
        "signed with the dev keys) in the foreground.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8009)
    parser.add_argument(
        "--keys", type=Path, default=None, help="dev keys (default: LOTSE_DEV_KEYS)"
    )
    parser.add_argument("--token-ttl", type=float, default=DEFAULT_ACCESS_TOKEN_TTL_S)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    idp = LocalIdentityProvider(
        issuer=DevIssuer(args.keys or default_dir()),
        host=args.host,
        port=args.port,
        access_token_ttl_s=args.token_ttl,
    )

    def ready(idp: LocalIdentityProvider) -> None:
        print(f"OpenID provider: {idp.url}")
        print(f"  LOTSE_OIDC_DISCOVERY_URL={idp.discovery_url}")
        for name, value in idp.service_env().items():
            print(f"  {name}={value}")
        print("Users:")
        for user in idp.users:
            roles = ", ".join(user.roles)
            print(f"  {user.sub:48} {roles:12} {user.district or '-':16} {user.note}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        idp.serve_forever(on_ready=ready)


if __name__ == "__main__":
    main()
