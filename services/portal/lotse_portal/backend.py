"""The four services' HTTP APIs, called with the signed-in user's own token.

The portal owns no domain data and decides nothing about who may see what: every
call carries the user's bearer token, so the services apply their rules and write
their audit log under the user's name. Their answers are turned into a few kinds of
failure a page knows how to show (:class:`NotYours`, :class:`Refused`,
:class:`Unavailable`, :class:`SignedOut`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

ServiceName = Literal["intake", "courses", "placement", "notifications"]
SERVICE_LABELS: Mapping[str, str] = {
    "intake": "Personendaten",
    "courses": "Kurse",
    "placement": "Vermittlung",
    "notifications": "Benachrichtigungen",
}


class ServiceError(Exception):
    def __init__(self, service: str, detail: str = "") -> None:
        super().__init__(f"{service}: {detail}")
        self.service = service
        self.detail = detail


class NotYours(ServiceError):
    """404 or 403: not there, or not the user's to see (the services do not say which)."""


class SignedOut(ServiceError):
    """401: the user's token expired or was refused; they must sign in again."""


class Unavailable(ServiceError):
    """The service did not answer, or answered 5xx: the page shows what it has."""


@dataclass
class FieldError:
    field: str  # dotted, e.g. "contacts.0.email"; "" for the whole form
    message: str
    kind: str = "value_error"


class Refused(ServiceError):
    """422 or 409: the request broke a rule; each error names its field."""

    def __init__(self, service: str, errors: list[FieldError]) -> None:
        super().__init__(service, "; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def field_errors(status: int, body: Any) -> list[FieldError]:
    """The services' problem details as field errors: a 422's ``errors`` (each with its
    dotted ``field``, ``reason`` and ``code``), else the ``detail`` sentence for the form.

    A rule checked across fields arrives for the whole body (``field`` "") with the field
    leading its reason ("contacts: at least one ..."); it is moved to that field."""
    problem = body if isinstance(body, dict) else {}
    listed = problem.get("errors")
    if not isinstance(listed, list):
        return [FieldError("", str(problem.get("detail") or f"HTTP {status}"), "conflict")]
    errors = []
    for item in listed:
        if not isinstance(item, dict):
            continue
        name = str(item.get("field") or "")
        message = str(item.get("reason", "")).removeprefix("Value error, ")
        head, sep, rest = message.partition(": ")
        if not name and sep and head.replace("_", "").replace(".", "").isalnum():
            name, message = head, rest
        errors.append(FieldError(name, message, str(item.get("code") or "value_error")))
    return errors


@dataclass
class CallLog:
    """The API calls one page made (the benchmark prints them; a header shows them)."""

    calls: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.calls)


class Services:
    """One connection pool to the four services, shared by every request."""

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.urls = dict(urls)
        self.client = httpx.AsyncClient(
            timeout=timeout_s,
            transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=40),
        )

    async def close(self) -> None:
        await self.client.aclose()

    def as_user(self, token: str, log: CallLog | None = None) -> UserApi:
        return UserApi(self, token, log if log is not None else CallLog())


class UserApi:
    """The services, as the signed-in user."""

    def __init__(self, services: Services, token: str, log: CallLog) -> None:
        self._services = services
        self._headers = {"Authorization": f"Bearer {token}"}
        self.log = log

    async def get(
        self, service: ServiceName, path: str, params: Mapping[str, Any] | None = None
    ) -> Any:
        return await self._call("GET", service, path, params=params)

    async def post(
        self,
        service: ServiceName,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self._call("POST", service, path, json=body, params=params, headers=headers)

    async def put(
        self, service: ServiceName, path: str, body: Any, *, if_match: int | None = None
    ) -> Any:
        headers = {"If-Match": str(if_match)} if if_match is not None else None
        return await self._call("PUT", service, path, json=body, headers=headers)

    async def raw(
        self, service: ServiceName, path: str, params: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        """A non-JSON answer (the report as CSV), passed on as it is."""
        response = await self._send("GET", service, path, params=params)
        self._raise_for(service, response)
        return response

    async def stream(self, service: ServiceName, path: str) -> AsyncIterator[bytes]:
        """A long answer passed on as it arrives (server-sent events)."""
        url = self._services.urls[service] + path
        self.log.calls.append(f"GET {service}{path} (stream)")
        timeout = httpx.Timeout(None, connect=5.0)
        try:
            async with self._services.client.stream(
                "GET", url, headers=self._headers, timeout=timeout
            ) as response:
                self._raise_for(service, response)
                async for chunk in response.aiter_raw():
                    yield chunk
        except httpx.TransportError as e:
            raise Unavailable(service, type(e).__name__) from e

    async def _send(
        self, method: str, service: ServiceName, path: str, **kw: Any
    ) -> httpx.Response:
        self.log.calls.append(f"{method} {service}{path}")
        headers = {**self._headers, **(kw.pop("headers", None) or {})}
        try:
            return await self._services.client.request(
                method, self._services.urls[service] + path, headers=headers, **kw
            )
        except httpx.TransportError as e:
            raise Unavailable(service, type(e).__name__) from e

    async def _call(self, method: str, service: ServiceName, path: str, **kw: Any) -> Any:
        response = await self._send(method, service, path, **kw)
        self._raise_for(service, response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    @staticmethod
    def _raise_for(service: str, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 401:
            raise SignedOut(service, "token refused")
        if status in (403, 404):
            raise NotYours(service, _detail(response))
        if status in (409, 422):
            raise Refused(service, field_errors(status, _json(response)))
        raise Unavailable(service, f"HTTP {status}")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(response: httpx.Response) -> str:
    body = _json(response)
    return str(body.get("detail", "")) if isinstance(body, dict) else ""


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
