"""Pages from Jinja2 templates, with what every page needs: the user, their language,
the CSRF token, labels for codes and a message left by the last action."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from lotse_shared.contracts.common import CefrLevel, OpeningType, ResidenceStatus, Sector
from lotse_shared.places import place_names

from . import i18n
from .sessions import csrf_token
from .signin import User


class Pages:
    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("lotse_portal", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            levels=[lv.value for lv in CefrLevel],
            sectors=[s.value for s in Sector],
            opening_types=[o.value for o in OpeningType],
            residence_statuses=[r.value for r in ResidenceStatus],
            work_permissions=list(i18n.WORK_PERMISSIONS),
            places=place_names(),
            stage_codes=list(i18n.STAGES),
            closing_reasons=list(i18n.CLOSING_REASONS),
            kind_codes=list(i18n.KINDS),
        )

    def render(
        self,
        request: Request,
        template: str,
        user: User | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        lang = language(request)
        # the last-resort error page is rendered outside the session middleware
        session: dict[str, Any] = request.scope.get("session", {})
        flash = session.pop("flash", None)
        html = self.env.get_template(template).render(
            request=request,
            user=user,
            lang=lang,
            t=i18n.translator(lang),
            stage=lambda code: i18n.label(i18n.STAGES, code, lang),
            reason=lambda code: i18n.label(i18n.CLOSING_REASONS, code, lang),
            opening_type=lambda code: i18n.label(i18n.OPENING_TYPES, code, lang),
            permission=lambda code: i18n.label(i18n.WORK_PERMISSIONS, code, lang),
            funnel_label=lambda code: i18n.label(i18n.FUNNEL, code, lang),
            kind_label=lambda code: i18n.label(i18n.KINDS, code, lang),
            csrf=csrf_token(session),
            flash=flash,
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status_code)


def language(request: Request) -> str:
    """German unless the user chose English (the button in the header)."""
    lang = request.scope.get("session", {}).get("lang")
    return str(lang) if lang in i18n.LANGUAGES else "de"


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """A message shown once on the next page (after a redirect)."""
    request.session["flash"] = {"message": message, "kind": kind}
