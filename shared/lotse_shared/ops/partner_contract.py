"""Writes the partners' AsyncAPI document and its HTML page (``make docs``).

``docs/asyncapi/`` holds the copies partners are given; a contract test fails when
they differ from what the code generates.
"""

from __future__ import annotations

import sys
from pathlib import Path

from faststream.specification import get_asyncapi_html

from lotse_shared.contracts.partner_asyncapi import PartnerContract, partner_document

JSON_NAME = "partners.asyncapi.json"
HTML_NAME = "partners.html"


def html_page(contract: PartnerContract) -> str:
    """FastStream's AsyncAPI page (the AsyncAPI React component), without "try it out"."""
    return get_asyncapi_html(contract, try_it_out_path=None)  # type: ignore[arg-type]


def write(directory: Path) -> list[Path]:
    contract = partner_document()
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / JSON_NAME, directory / HTML_NAME]
    written[0].write_text(contract.to_json(), encoding="utf-8")
    written[1].write_text(html_page(contract), encoding="utf-8")
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/asyncapi")):
        print(path)
