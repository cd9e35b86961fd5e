"""TLS for the connections every service opens.

- AMQP: an ``amqps://`` URL turns TLS on; :func:`amqp_ssl_context` verifies the
  broker's certificate and host name against ``LOTSE_RABBIT_TLS_CA_FILE`` (or the
  system's CAs) and presents a client certificate when one is configured. The same
  context goes to FastStream's broker and to every aio-pika connection (the
  dead-letter desk).
- MongoDB: ``LOTSE_MONGO_TLS`` / ``LOTSE_MONGO_TLS_CA_FILE`` /
  ``LOTSE_MONGO_TLS_CERT_KEY_FILE`` become PyMongo's ``tls``, ``tlsCAFile`` and
  ``tlsCertificateKeyFile`` (the URL may carry the same options itself).
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from faststream.security import BaseSecurity

from .settings import ServiceSettings


def tls_client_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """A client context: certificate and host name verified, TLS 1.2 at least."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


def amqp_ssl_context(settings: ServiceSettings) -> ssl.SSLContext | None:
    """The context for ``amqps://``; None for a plain ``amqp://`` URL."""
    if urlsplit(settings.rabbit_url).scheme != "amqps":
        return None
    return tls_client_context(
        str(settings.rabbit_tls_ca_file) if settings.rabbit_tls_ca_file else None,
        str(settings.rabbit_tls_cert_file) if settings.rabbit_tls_cert_file else None,
        str(settings.rabbit_tls_key_file) if settings.rabbit_tls_key_file else None,
    )


def broker_security(settings: ServiceSettings) -> BaseSecurity | None:
    """FastStream's ``security=`` argument for the broker (TLS only; the URL logs in)."""
    context = amqp_ssl_context(settings)
    return None if context is None else BaseSecurity(ssl_context=context, use_ssl=True)


def mongo_tls_options(settings: ServiceSettings) -> dict[str, Any]:
    """Keyword options for ``AsyncMongoClient``; empty when TLS is not configured here."""
    options: dict[str, Any] = {}
    if settings.mongo_tls or settings.mongo_tls_ca_file or settings.mongo_tls_cert_key_file:
        options["tls"] = True
    if settings.mongo_tls_ca_file is not None:
        options["tlsCAFile"] = str(settings.mongo_tls_ca_file)
    if settings.mongo_tls_cert_key_file is not None:
        options["tlsCertificateKeyFile"] = str(settings.mongo_tls_cert_key_file)
    return options
