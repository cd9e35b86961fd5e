"""notifications' HTTP routes: the inbox as JSON, the inbox in the browser, preferences."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from time import monotonic
from typing import Annotated, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, EmailStr, Field

from lotse_notifications.domain.model import (
    BERLIN,
    CHOOSABLE,
    Attempt,
    Cadence,
    Channel,
    Kind,
    Notification,
    Preferences,
)
from lotse_notifications.handlers import NotificationsHandlers, whose_inbox
from lotse_notifications.inbox import InboxCounts, InboxFilter
from lotse_notifications.inbox_page import PAGE_SIZE, back_to_page, page_context
from lotse_notifications.live import InboxChanges
from lotse_notifications.settings import CadenceKind
from lotse_notifications.templates import Templates
from lotse_shared.auth import STAFF, Principal
from lotse_shared.auth.audit import concerning
from lotse_shared.auth.http import TOKEN_COOKIE, Authenticator
from lotse_shared.http import MAX_OFFSET
from lotse_shared.routes import api_router


def of_district(viewer: Principal, items: list[Notification]) -> list[Notification]:
    """An admin looking into someone else's inbox sees only their own district's items."""
    return [
        n
        for n in items
        if n.recipient_email.lower() == viewer.identity or (viewer.in_district(n.district_id))
    ]


def about(request: Request, n: Notification) -> Notification:
    if n.person_id is not None:  # a digest is about several people, and names none here
        concerning(request, person_id=n.person_id)  # whose data, for the audit
    return n


def live_state(counts: InboxCounts) -> str:
    """What the open page watches: '<unread>|<newest created_at>'."""
    return f"{counts.unread}|{counts.newest.isoformat() if counts.newest else ''}"


Recipient = Annotated[
    EmailStr | None,
    Query(description="Whose inbox: the caller's own if empty; another's for admins only"),
]
PersonFilter = Annotated[
    uuid.UUID | None, Query(description="Only the notifications about this person")
]
KindFilter = Annotated[Kind | None, Query(description="Only notifications of this kind")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]

EMAIL_LABELS = {
    "pending": "wird gesendet",
    "digest": "in der Tagesübersicht",
    "sent": "gesendet",
    "failed": "fehlgeschlagen",
    "skipped": "keine Einwilligung",
    "opted_out": "abbestellt",
    "bundled": "in der Tagesübersicht",
    "read": "nicht gesendet: vorher gelesen",
}


class UnreadCounts(BaseModel):
    total: int = Field(description="Unread notifications in the inbox (not archived)")
    by_kind: dict[Kind, int] = Field(description="The same per kind; every kind named")


class Marked(BaseModel):
    marked: int = Field(description="How many were unread and are read now")


class PreferencesIn(BaseModel):
    opted_out: list[Literal["email", "webhook"]] = Field(
        default_factory=list,
        description="Channels this recipient does not want; the inbox is always on, "
        "and critical alerts are emailed anyway.",
    )
    cadence: dict[CadenceKind, Cadence] = Field(
        default_factory=dict,
        description="Per kind: immediate (own alert and email), hourly or daily (in the "
        "digest). Kinds left out follow the district's default; critical alerts (a "
        "dropped course) are always immediate.",
    )
    daily_email_cap: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Immediate emails a day before the rest waits for the digest "
        "(critical ones always go); null: the district's default; 0: no cap.",
    )


class Upcoming(BaseModel):
    person_id: uuid.UUID
    person: str
    opening_id: str
    title: str
    score: float
    due_at: datetime | None = Field(description="When the digest carrying it goes out.")


class Effective(BaseModel):
    cadence: dict[Kind, Cadence]
    daily_email_cap: int


class PreferencesOut(Preferences):
    effective: Effective = Field(
        description="What applies: the recipient's choices over the district's defaults."
    )


def make_router(h: NotificationsHandlers, auth: Authenticator) -> APIRouter:
    """The caller's own inbox (the token's email); other people's answer 404."""
    router = api_router(prefix="/notifications", tags=["inbox"])
    staff = auth.require(*STAFF)

    @router.get("", summary="The caller's inbox: unread first, newest first")
    async def inbox(
        request: Request,
        viewer: Principal = staff,
        recipient: Recipient = None,
        unread_only: bool = False,
        archived: Annotated[bool, Query(description="The archive instead of the inbox")] = False,
        person_id: PersonFilter = None,
        kind: KindFilter = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Offset = 0,
    ) -> list[Notification]:
        f = InboxFilter(whose_inbox(viewer, recipient), archived, unread_only, kind, person_id)
        if person_id is not None:
            concerning(request, person_id=person_id)
        page = await h.inbox_page(f, offset, limit, counted=False)
        return of_district(viewer, page.items)

    @router.get("/unread-counts", summary="Unread notifications in the inbox, in all and per kind")
    async def unread_counts(viewer: Principal = staff, recipient: Recipient = None) -> UnreadCounts:
        counts = await h.inbox_counts(whose_inbox(viewer, recipient))
        return UnreadCounts(total=counts.unread, by_kind=counts.unread_by_kind())

    @router.get(
        "/unread-by-person",
        summary="Unread notifications in the inbox per person they are about",
        description="`{person_id: count}` for the unread, not archived items that name a "
        "person (digests name none); people without unread items are left out. One "
        "call for a caseload page's badges.",
    )
    async def unread_by_person(
        viewer: Principal = staff, recipient: Recipient = None
    ) -> dict[str, int]:
        counts = await h.unread_by_person(whose_inbox(viewer, recipient), viewer)
        return {str(person_id): n for person_id, n in counts.items()}

    @router.get(
        "/upcoming",
        summary="Suggestions waiting for the caller's next digest, with when it goes out",
    )
    async def upcoming(viewer: Principal = staff, recipient: Recipient = None) -> list[Upcoming]:
        entries = await h.upcoming(whose_inbox(viewer, recipient))
        return [
            Upcoming(
                person_id=e.person_id,
                person=e.person,
                opening_id=e.opening_id,
                title=e.suggestion["title"],
                score=e.score,
                due_at=e.due_at,
            )
            for e in entries
            if viewer.in_district(e.district_id)
        ]

    @router.post(
        "/read-all",
        summary="Mark every unread notification of the filter read (emails not yet sent "
        "are not sent any more)",
    )
    async def read_all(
        request: Request,
        viewer: Principal = staff,
        recipient: Recipient = None,
        person_id: PersonFilter = None,
        kind: KindFilter = None,
    ) -> Marked:
        f = InboxFilter(whose_inbox(viewer, recipient), kind=kind, person_id=person_id)
        if person_id is not None:
            concerning(request, person_id=person_id)
        return Marked(marked=await h.read_all(f, viewer))

    @router.get("/{notification_id}", summary="One notification with its delivery state")
    async def read_one(
        notification_id: uuid.UUID, request: Request, viewer: Principal = staff
    ) -> Notification:
        return about(request, await h.get(notification_id, viewer))

    @router.get(
        "/{notification_id}/deliveries",
        summary="Delivery log: each attempt with channel, time and result, oldest first",
    )
    async def deliveries(notification_id: uuid.UUID, viewer: Principal = staff) -> list[Attempt]:
        return await h.delivery_log(notification_id, viewer)

    @router.post("/{notification_id}/read", summary="Mark as read (idempotent)")
    async def mark_read(
        notification_id: uuid.UUID, request: Request, viewer: Principal = staff
    ) -> Notification:
        return about(request, await h.mark_read(notification_id, viewer))

    @router.post("/{notification_id}/archive", summary="Archive (and so mark read; idempotent)")
    async def archive(
        notification_id: uuid.UUID, request: Request, viewer: Principal = staff
    ) -> Notification:
        return about(request, await h.archive(notification_id, viewer))

    return router


def make_preferences_router(h: NotificationsHandlers, auth: Authenticator) -> APIRouter:
    router = api_router(prefix="/preferences", tags=["preferences"])
    staff = auth.require(*STAFF)

    def shown(prefs: Preferences, viewer: Principal) -> PreferencesOut:
        defaults = h.policy.for_district(viewer.district_id or "")
        priority = {k: h.routing.rule_for(k, viewer.district_id or "").priority for k in CHOOSABLE}
        return PreferencesOut(
            **prefs.model_dump(),
            effective=Effective(
                cadence={k: defaults.cadence_for(k, prefs, priority[k]) for k in CHOOSABLE},
                daily_email_cap=defaults.cap_for(prefs),
            ),
        )

    @router.get("", summary="The caller's channel choices, cadences and daily email cap")
    async def get_preferences(
        viewer: Principal = staff, recipient: Recipient = None
    ) -> PreferencesOut:
        return shown(await h.repo.preferences_of(whose_inbox(viewer, recipient)), viewer)

    @router.put("", summary="Replace the caller's choices (left out: the district's default)")
    async def put_preferences(
        body: PreferencesIn, viewer: Principal = staff, recipient: Recipient = None
    ) -> PreferencesOut:
        prefs = Preferences(
            opted_out={Channel(c) for c in body.opted_out},
            cadence={Kind(k): v for k, v in body.cadence.items()},
            daily_email_cap=body.daily_email_cap,
        )
        await h.repo.save_preferences(whose_inbox(viewer, recipient), prefs)
        return shown(prefs, viewer)

    return router


def login_page(templates: Templates, error: str | None = None) -> str:
    return templates.page(
        "inbox.html",
        recipient=None,
        unread=0,
        berlin=BERLIN,
        email_labels=EMAIL_LABELS,
        login_error=error,
    )


def make_browser_router(
    h: NotificationsHandlers, templates: Templates, changes: InboxChanges, auth: Authenticator
) -> APIRouter:
    """The inbox as a server-rendered page: plain forms, and live updates over SSE.

    A browser sends no bearer header, so the page signs in once: the token is posted
    to /inbox/login and kept in an HttpOnly, SameSite=Lax cookie (scripts cannot
    read it, other sites cannot post with it). Without it the page answers 401 with
    the sign-in form. Bearer headers work here too.
    """
    router = api_router(prefix="/inbox", tags=["browser inbox"])
    signed_in = auth.require(*STAFF, cookie=True)

    @router.post(
        "/login",
        summary="Sign in the browser: checks the posted token, keeps it in an HttpOnly cookie",
        response_class=HTMLResponse,
        response_model=None,
    )
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        try:
            principal = await auth.authenticate(token)
        except HTTPException as e:
            return HTMLResponse(login_page(templates, "Anmeldung fehlgeschlagen."), e.status_code)
        if not principal.has_any(STAFF):
            return HTMLResponse(login_page(templates, "Keine Berechtigung."), 403)
        response = RedirectResponse("/inbox", status_code=303)
        response.set_cookie(
            TOKEN_COOKIE,
            token,
            httponly=True,
            # Lax, not Strict: the link in an alert email is a cross-site navigation and
            # must arrive signed in; other sites' POSTs (read, archive) still carry no cookie
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/inbox",
        )
        return response

    @router.post("/logout", summary="Sign the browser out (drops the cookie)")
    async def logout() -> RedirectResponse:
        response = RedirectResponse("/inbox", status_code=303)
        response.delete_cookie(TOKEN_COOKIE, path="/inbox")
        return response

    async def state(recipient: str) -> str:
        return live_state(await h.inbox_counts(recipient))

    @router.get(
        "",
        response_class=HTMLResponse,
        summary=f"The inbox page: unread first, newest first, {PAGE_SIZE} a page",
    )
    async def page(
        request: Request,
        viewer: Principal = signed_in,
        recipient: Annotated[
            EmailStr | None, Query(description="Whose inbox (another's: admins only)")
        ] = None,
        archived: bool = False,
        unread_only: bool = False,
        # the filter form sends an empty kind for "all kinds"
        kind: Annotated[Kind | Literal[""] | None, Query(description="Only this kind")] = None,
        person_id: PersonFilter = None,
        offset: Offset = 0,
    ) -> HTMLResponse:
        f = InboxFilter(
            whose_inbox(viewer, recipient),
            archived=archived,
            unread_only=unread_only and not archived,
            kind=kind or None,
            person_id=person_id,
        )
        page = await h.inbox_page(f, offset, PAGE_SIZE)
        items = of_district(viewer, page.items)
        person = None
        if person_id is not None:
            concerning(request, person_id=person_id)
            known = await h.repo.recipients_of(person_id)
            visible = known is not None and (
                bool(items)
                or viewer.may_access_person(known.district_id, [c.email for c in known.contacts])
            )
            person = known.display_name if known is not None and visible else "eine Person"
        return HTMLResponse(
            templates.page(
                "inbox.html",
                **page_context(f, page, items, offset, person, live_state(page.counts)),
                berlin=BERLIN,
                email_labels=EMAIL_LABELS,
                login_error=None,
            )
        )

    @router.post(
        "/read-all",
        summary="Mark every unread item of the page's filter read, then back to the page",
    )
    async def page_read_all(
        request: Request,
        viewer: Principal = signed_in,
        recipient: Recipient = None,
        kind: Annotated[Kind | Literal[""] | None, Query(description="Only this kind")] = None,
        person_id: PersonFilter = None,
        unread_only: bool = False,
    ) -> RedirectResponse:
        f = InboxFilter(
            whose_inbox(viewer, recipient),
            unread_only=unread_only,
            kind=kind or None,
            person_id=person_id,
        )
        if person_id is not None:
            concerning(request, person_id=person_id)
        await h.read_all(f, viewer)
        return RedirectResponse(
            back_to_page(dict(request.query_params), f.recipient), status_code=303
        )

    @router.post("/{notification_id}/read", summary="Mark read from the page, then back to it")
    async def page_read(
        notification_id: uuid.UUID, request: Request, viewer: Principal = signed_in
    ) -> RedirectResponse:
        n = about(request, await h.mark_read(notification_id, viewer))
        return RedirectResponse(
            back_to_page(dict(request.query_params), n.recipient_email), status_code=303
        )

    @router.post("/{notification_id}/archive", summary="Archive from the page, then back to it")
    async def page_archive(
        notification_id: uuid.UUID, request: Request, viewer: Principal = signed_in
    ) -> RedirectResponse:
        n = about(request, await h.archive(notification_id, viewer))
        return RedirectResponse(
            back_to_page(dict(request.query_params), n.recipient_email), status_code=303
        )

    @router.get(
        "/events",
        summary="Server-sent events: `inbox` with '<unread>|<newest>' whenever it changes",
    )
    async def events(
        viewer: Principal = signed_in, recipient: Recipient = None
    ) -> StreamingResponse:
        recipient = whose_inbox(viewer, recipient)

        async def stream() -> AsyncIterator[str]:
            last = None
            idle = 0
            ends = monotonic() + changes.stream_s
            yield "retry: 2000\n\n"
            while monotonic() < ends:
                now = await state(recipient)
                if now != last:
                    yield f"event: inbox\ndata: {now}\n\n"
                    last, idle = now, 0
                elif (idle := idle + 1) % 10 == 0:
                    yield ": keep-alive\n\n"
                await changes.wait()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router
