"""The portal's pages: each route reads the user, calls a use case in ``views`` (or one
service action) with the user's token, and renders. Forms post back here with the
session's CSRF token, then redirect (post/redirect/get), so a reload repeats nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from lotse_portal import forms
from lotse_portal.backend import CallLog, NotYours, Refused, Services, UserApi, is_uuid
from lotse_portal.rendering import Pages, flash, language
from lotse_portal.sessions import csrf_valid
from lotse_portal.signin import User, current_user
from lotse_portal.views import caseload as caseload_view
from lotse_portal.views import figures as figures_view
from lotse_portal.views import inbox as inbox_view
from lotse_portal.views import openings as openings_view
from lotse_portal.views import person as person_view


class BadCsrf(Exception):
    """A form without this session's CSRF token (another site's, or a stale tab)."""


async def checked_form(request: Request) -> dict[str, Any]:
    form = await request.form()
    if not csrf_valid(request.session, str(form.get("csrf_token", ""))):
        raise BadCsrf()
    return {"form": form}


Signed = Annotated[User, Depends(current_user)]
Checked = Annotated[dict[str, Any], Depends(checked_form)]


def make_pages_router(services: Services, pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def api(request: Request, user: User) -> UserApi:
        log = request.state.calls if hasattr(request.state, "calls") else CallLog()
        request.state.calls = log
        return services.as_user(user.access_token, log)

    def back(path: str) -> RedirectResponse:
        return RedirectResponse(path, status_code=303)

    @router.get("/")
    async def home() -> RedirectResponse:
        return back("/caseload")

    @router.get("/auth/signed-out", name="signed_out")
    async def signed_out(request: Request) -> HTMLResponse:
        return pages.render(request, "signed_out.html", None)

    @router.post("/language")
    async def choose_language(request: Request, checked: Checked) -> RedirectResponse:
        form = checked["form"]
        lang = str(form.get("lang", "de"))
        request.session["lang"] = lang if lang in ("de", "en") else "de"
        return back(_local(str(form.get("back", "/"))))

    # --- caseload ----------------------------------------------------------------------
    @router.get("/caseload")
    async def caseload(
        request: Request,
        user: Signed,
        q: str = "",
        municipality: str = "",
        level: str = "",
        stage: str = "",
        flag: str = "",
        sort: str = "name",
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> HTMLResponse:
        f = caseload_view.CaseloadFilter(q, municipality, level, stage, flag, sort, offset)
        data = await caseload_view.caseload(api(request, user), user, f)
        return pages.render(
            request, "caseload.html", user, data=data, f=f, flags=caseload_view.FLAGS
        )

    # --- register and edit a person ------------------------------------------------------
    @router.get("/people/new")
    async def new_person(request: Request, user: Signed) -> HTMLResponse:
        values = forms.blank_form(user.email, user.name)
        return pages.render(request, "person_form.html", user, values=values, errors={})

    @router.post("/people/new")
    async def register(request: Request, user: Signed, checked: Checked) -> Response:
        form = checked["form"]
        values = forms.read_form(form, form.getlist)
        try:
            person = await api(request, user).post(
                "intake",
                "/people",
                forms.person_body(values, user.district),
                idempotency_key=values["form_key"],
            )
        except Refused as e:
            errors = forms.errors_at_fields(e.errors, language(request))
            return pages.render(
                request, "person_form.html", user, 422, values=values, errors=errors
            )
        flash(request, "Person angelegt.")
        return back(f"/people/{person['person_id']}")

    @router.get("/people/{person_id}/edit")
    async def edit_person(request: Request, user: Signed, person_id: uuid.UUID) -> HTMLResponse:
        person = await api(request, user).get("intake", f"/people/{person_id}")
        return pages.render(
            request,
            "person_form.html",
            user,
            values=forms.form_from_person(person),
            errors={},
            person=person,
        )

    @router.post("/people/{person_id}/edit")
    async def save_person(
        request: Request, user: Signed, person_id: uuid.UUID, checked: Checked
    ) -> Response:
        form = checked["form"]
        values = forms.read_form(form, form.getlist)
        people = api(request, user)
        person = await people.get("intake", f"/people/{person_id}")
        others = [c for c in person["contacts"] if c["role"] != "caseworker"]
        others += [c for c in person["contacts"] if c["role"] == "caseworker"][1:]
        try:
            await people.put(
                "intake",
                f"/people/{person_id}",
                forms.person_body(values, person["district_id"], others),
                if_match=int(str(form.get("revision") or person["revision"])),
            )
        except Refused as e:
            now = await people.get("intake", f"/people/{person_id}")
            if forms.same_details(forms.form_from_person(now), values):
                flash(request, "Gespeichert.")  # the first of a double submit saved it
                return back(f"/people/{person_id}")
            errors = forms.errors_at_fields(e.errors, language(request))
            return pages.render(
                request,
                "person_form.html",
                user,
                422,
                values=values,
                errors=errors,
                person=now,
            )
        flash(request, "Gespeichert.")
        return back(f"/people/{person_id}")

    # --- a person's file -----------------------------------------------------------------
    @router.get("/people/{person_id}")
    async def person_file(
        request: Request,
        user: Signed,
        person_id: uuid.UUID,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> HTMLResponse:
        data = await person_view.person_file(api(request, user), str(person_id), offset)
        return pages.render(
            request,
            "person.html",
            user,
            data=data,
            offset=offset,
            next_stages=person_view.next_stages,
            today=date.today().isoformat(),
        )

    async def action(request: Request, person_id: uuid.UUID, call: Any, done: str) -> Response:
        """Run one service action; its refusal is shown on the file, not as an error page."""
        try:
            await call
        except Refused as e:
            flash(request, "Nicht möglich: " + "; ".join(x.message for x in e.errors), "error")
        else:
            flash(request, done)
        return back(f"/people/{person_id}")

    @router.post("/people/{person_id}/suggestions/{opening_id}/accept")
    async def accept(
        request: Request,
        user: Signed,
        person_id: uuid.UUID,
        opening_id: uuid.UUID,
        checked: Checked,
    ) -> Response:
        note = str(checked["form"].get("note", ""))
        call = api(request, user).post(
            "placement", f"/people/{person_id}/suggestions/{opening_id}/accept", {"note": note}
        )
        return await action(
            request, person_id, call, "Vorgeschlagen: ein Vermittlungsfall ist offen."
        )

    @router.post("/people/{person_id}/suggestions/{opening_id}/dismiss")
    async def dismiss(
        request: Request,
        user: Signed,
        person_id: uuid.UUID,
        opening_id: uuid.UUID,
        checked: Checked,
    ) -> Response:
        reason = str(checked["form"].get("reason", "")).strip()
        call = api(request, user).post(
            "placement", f"/people/{person_id}/suggestions/{opening_id}/dismiss", {"reason": reason}
        )
        return await action(request, person_id, call, "Verworfen.")

    def case_step(form: Mapping[str, object], what: str) -> dict[str, str]:
        """A case's step as placement takes it: ``what`` (the stage or the reason for
        closing), the day (today unless given) and a note."""
        return {
            what: str(form.get(what, "")),
            "on": str(form.get("on") or date.today().isoformat()),
            "note": str(form.get("note", "")),
        }

    @router.post("/people/{person_id}/cases/{case_id}/stage")
    async def advance(
        request: Request, user: Signed, person_id: uuid.UUID, case_id: uuid.UUID, checked: Checked
    ) -> Response:
        body = case_step(checked["form"], "stage")
        call = api(request, user).post("placement", f"/cases/{case_id}/stage", body)
        return await action(request, person_id, call, "Stufe gespeichert.")

    @router.post("/people/{person_id}/cases/{case_id}/close")
    async def close_case(
        request: Request, user: Signed, person_id: uuid.UUID, case_id: uuid.UUID, checked: Checked
    ) -> Response:
        body = case_step(checked["form"], "reason")
        call = api(request, user).post("placement", f"/cases/{case_id}/close", body)
        return await action(request, person_id, call, "Fall abgeschlossen.")

    # --- openings ------------------------------------------------------------------------
    @router.get("/openings")
    async def openings(
        request: Request,
        user: Signed,
        opening_type: str = "",
        sector: str = "",
        municipality: str = "",
        german_level: str = "",
        starts_by: str = "",
        q: str = "",
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> HTMLResponse:
        f = openings_view.OpeningsFilter(
            opening_type, sector, municipality, german_level, starts_by, q, offset
        )
        items = await openings_view.openings(api(request, user), f)
        return pages.render(request, "openings.html", user, items=items, f=f)

    @router.get("/openings/{opening_id}")
    async def opening(request: Request, user: Signed, opening_id: uuid.UUID) -> HTMLResponse:
        data = await openings_view.opening_page(api(request, user), str(opening_id))
        return pages.render(request, "opening.html", user, data=data)

    @router.post("/openings/{opening_id}/propose")
    async def propose(
        request: Request, user: Signed, opening_id: uuid.UUID, checked: Checked
    ) -> Response:
        person_id = uuid.UUID(str(checked["form"].get("person_id")))
        call = api(request, user).post(
            "placement", f"/people/{person_id}/suggestions/{opening_id}/accept", {"note": ""}
        )
        return await action(
            request, person_id, call, "Vorgeschlagen: ein Vermittlungsfall ist offen."
        )

    # --- inbox ---------------------------------------------------------------------------
    @router.get("/inbox")
    async def inbox(
        request: Request,
        user: Signed,
        archived: bool = False,
        unread_only: bool = False,
        kind: str = "",
        person_id: str = "",
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> HTMLResponse:
        f = inbox_view.InboxFilter.of(archived, unread_only, kind, person_id, offset)
        data = await inbox_view.inbox(api(request, user), f)
        return pages.render(
            request,
            "inbox.html",
            user,
            data=data,
            f=f,
            missing=data.missing,
            page_size=inbox_view.INBOX_PAGE,
        )

    @router.post("/inbox/{notification_id}/{verb}")
    async def inbox_action(
        request: Request, user: Signed, notification_id: str, verb: str, checked: Checked
    ) -> Response:
        """Read or archive one item, or mark all of the page's filter read ("all"),
        then back to the page the form was on."""
        form = checked["form"]
        people = api(request, user)
        everything = notification_id == "all" and verb == "read"
        if verb not in ("read", "archive") or not (is_uuid(notification_id) or everything):
            raise NotYours("notifications", verb)
        if everything:
            f = inbox_view.InboxFilter.of(
                False, False, str(form.get("kind", "")), str(form.get("person_id", "")), 0
            )
            params = {k: v for k, v in f.params().items() if k in ("kind", "person_id")}
            await people.post("notifications", "/notifications/read-all", params=params)
        else:
            await people.post("notifications", f"/notifications/{notification_id}/{verb}")
        return back(_local(str(form.get("back", "/inbox"))))

    @router.get("/inbox/events")
    async def inbox_events(request: Request, user: Signed) -> StreamingResponse:
        """notifications' live stream (``GET /notifications/events``), passed through with
        the user's token: the open inbox page updates itself, every page its badge."""
        stream: AsyncIterator[bytes] = api(request, user).stream(
            "notifications", "/notifications/events"
        )
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # --- district figures -----------------------------------------------------------------
    @router.get("/figures")
    async def figures(request: Request, user: Signed) -> HTMLResponse:
        report = await figures_view.figures(api(request, user))
        return pages.render(request, "figures.html", user, report=report, bars=figures_view.bars)

    @router.get("/figures.csv")
    async def figures_csv(request: Request, user: Signed) -> Response:
        answer = await api(request, user).raw("placement", "/reports/placement", {"format": "csv"})
        return Response(
            answer.content,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": answer.headers.get(
                    "content-disposition", 'attachment; filename="placement.csv"'
                )
            },
        )

    return router


def _local(path: str) -> str:
    return path if path.startswith("/") and not path.startswith("//") else "/"
