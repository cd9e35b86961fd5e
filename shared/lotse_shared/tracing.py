"""OpenTelemetry traces: one trace follows an event through every service.

Off unless asked for, by the standard variables: ``OTEL_TRACES_EXPORTER=otlp`` sends
spans to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and the other ``OTEL_EXPORTER_OTLP_*``
settings, read by the exporter itself); ``console`` writes them to stdout. For tests
and local runs, ``LOTSE_TRACE_DIR`` writes each process's spans to a JSON-lines file
of its own there.

What makes one trace of a flow: FastStream's telemetry middleware continues the trace
of every message it consumes (the W3C ``traceparent`` header) and starts one for a
message without it (a partner's); FastAPI's instrumentation does the same for HTTP
requests; and the outbox keeps the ``traceparent`` of the transaction that wrote an
event, so the relay, publishing later and elsewhere, publishes it inside that trace.
PyMongo's instrumentation adds a span per database command.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


def enabled() -> bool:
    """Whether this process was asked to record traces (read at start, not per call)."""
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    return exporter not in ("", "none") or bool(os.environ.get("LOTSE_TRACE_DIR"))


def configure(service_name: str) -> TracerProvider | None:
    """Install the process's tracer provider, if traces were asked for; once, at start."""
    exporter = _exporter(service_name)
    if exporter is None:
        return None
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)}
        )
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    PymongoInstrumentor().instrument(tracer_provider=provider)
    return provider


def _exporter(service_name: str) -> SpanExporter | None:
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if kind == "console":
        return ConsoleSpanExporter()
    folder = os.environ.get("LOTSE_TRACE_DIR")
    if folder:
        path = Path(folder) / f"{service_name}-{os.getpid()}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        return ConsoleSpanExporter(
            out=path.open("a", encoding="utf-8"),
            formatter=lambda span: _one_line(span),
        )
    return None


def _one_line(span: ReadableSpan) -> str:
    return span.to_json(indent=None) + "\n"


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the span in progress, to keep with work done later."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def continued(traceparent: str | None) -> Iterator[None]:
    """Run the block inside the trace a ``traceparent`` names (nothing, without one)."""
    if not traceparent:
        yield
        return
    token = context.attach(_PROPAGATOR.extract({"traceparent": traceparent}))
    try:
        yield
    finally:
        context.detach(token)


def ids_of_current_span() -> Mapping[str, Any]:
    """``trace_id`` and ``span_id`` (hex, as trace viewers show them), if a span is on."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return {}
    return {
        "trace_id": format(span_context.trace_id, "032x"),
        "span_id": format(span_context.span_id, "016x"),
    }
