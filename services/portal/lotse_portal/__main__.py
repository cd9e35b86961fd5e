"""Run the portal: ``python -m lotse_portal`` (settings: LOTSE_* variables)."""

from __future__ import annotations

import logging

import uvicorn
from pydantic import ValidationError

from lotse_shared import logs

from .bootstrap import create_app
from .settings import PortalSettings


def main() -> None:
    try:
        settings = PortalSettings()
    except ValidationError as exc:
        names = ", ".join("LOTSE_" + ".".join(map(str, e["loc"])).upper() for e in exc.errors())
        raise SystemExit(f"PortalSettings: refusing to start: check {names}") from None
    logs.configure(settings.log_level, settings.service_name, settings.log_format)
    # httpx logs every URL it calls, and a caseload search carries a name in its query
    logging.getLogger("httpx").setLevel(logging.WARNING)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
