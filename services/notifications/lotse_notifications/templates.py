"""Renders alerts from Jinja2 templates: German by default, English on request.

Each template's first line is the subject, the rest the body. Templates live in
``templates/<language>/<kind>.txt`` inside the package. ``channel`` is "inbox" or
"email": an email leaves out what only the inbox needs to show (free-text
reasons), since mail passes servers Lotse does not control. The inbox page is the
portal's; it shows these texts as they are stored.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from lotse_shared.contracts.common import Language

from .domain.model import Kind

TYPE_LABELS = {
    Language.DE: {
        "praktikum": "Praktikum",
        "einstiegsqualifizierung": "Einstiegsqualifizierung",
        "ausbildung": "Ausbildung",
        "beschaeftigung": "Beschäftigung",
    },
    Language.EN: {
        "praktikum": "internship",
        "einstiegsqualifizierung": "pre-apprenticeship (EQ)",
        "ausbildung": "apprenticeship",
        "beschaeftigung": "job",
    },
}


class Templates:
    @cached_property
    def _env(self) -> Environment:
        return Environment(
            loader=PackageLoader("lotse_notifications", "templates"),
            undefined=StrictUndefined,
            autoescape=False,  # plain-text email
            trim_blocks=True,
            keep_trailing_newline=True,
        )

    def render(
        self, kind: Kind, language: Language, facts: dict[str, Any], channel: str = "inbox"
    ) -> tuple[str, str]:
        return self._text(f"{language.value}/{kind.value}.txt", language, channel, facts)

    def _text(
        self, name: str, language: Language, channel: str, facts: dict[str, Any]
    ) -> tuple[str, str]:
        template = self._env.get_template(name)
        text = template.render(type_labels=TYPE_LABELS[language], channel=channel, **facts)
        subject, _, body = text.partition("\n")
        return subject.strip(), body.strip() + "\n"
