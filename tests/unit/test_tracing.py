"""The trace of an event survives the places where work is picked up later: the outbox
row and the parked event keep the ``traceparent`` of the transaction that wrote them."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from lotse_devstack.samples import one_of_each_event
from lotse_shared import tracing
from lotse_shared.persistence.mongo import outbox_document

TRACER = TracerProvider().get_tracer("lotse-test")  # a provider of its own, not the global


def test_an_outbox_row_keeps_the_trace_it_was_written_in_and_the_relay_continues_it() -> None:
    event = one_of_each_event()[0]
    assert outbox_document(event)["traceparent"] is None  # no trace, nothing kept
    with TRACER.start_as_current_span("handling") as span:
        row = outbox_document(event)
    ids = span.get_span_context()
    assert row["traceparent"].startswith(f"00-{ids.trace_id:032x}-{ids.span_id:016x}-")

    assert not trace.get_current_span().get_span_context().is_valid
    with tracing.continued(row["traceparent"]):
        inside = trace.get_current_span().get_span_context()
        assert (inside.trace_id, inside.span_id) == (ids.trace_id, ids.span_id)
        assert tracing.ids_of_current_span() == {
            "trace_id": f"{ids.trace_id:032x}",
            "span_id": f"{ids.span_id:016x}",
        }
    assert not trace.get_current_span().get_span_context().is_valid
    with tracing.continued(None):
        assert tracing.ids_of_current_span() == {}


def test_tracing_is_off_unless_asked_for(monkeypatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("LOTSE_TRACE_DIR", raising=False)
    assert not tracing.enabled()
    assert tracing.configure("intake") is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing.enabled()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    assert tracing.enabled()
