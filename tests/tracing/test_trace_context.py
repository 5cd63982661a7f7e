"""Trace context end to end, through real servers: the SDK's in-memory exporter
for spans, the JSONL lines for what was recorded, a real OTLP receiver for export."""
import json
import secrets

import grpc
import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.client.worker import Worker
from opsledger.server.tracing import OFF, Tracing, from_environment, requested
from opsledger.v1 import tickets_pb2, tickets_pb2_grpc
from tests.cycle.conftest import write_bundle
from tests.helpers import OtlpReceiver, ServerProcess, ServerThread, ledger_lines

SUBMIT = {"schema": "TICKET_SUBMIT_V1", "request_type": "ACKNOWLEDGE", "payload": {"message_id": "m1"}}


def traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def memory_tracing() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider), exporter


def stored_trace_ids(srv) -> dict[str, str | None]:
    requests, _results = ledger_lines(srv)
    return {r["request_id"]: r["trace_id"] for r in map(json.loads, requests)}


def server_span(spans, prefix: str):
    (span,) = [s for s in spans if s.kind == trace.SpanKind.SERVER and s.name.startswith(prefix)]
    return span


def hex_id(span) -> str:
    return trace.format_trace_id(span.context.trace_id)


@pytest.fixture
def traced(root):
    tracing, exporter = memory_tracing()
    srv = ServerThread(root, http_addr="127.0.0.1:0", tracing=tracing).start()
    yield srv, exporter
    srv.stop()


def test_http_traceparent_is_the_recorded_trace_id_and_every_span_is_in_that_trace(traced):
    srv, exporter = traced
    trace_id, header = traceparent()
    reply = httpx.post(f"http://127.0.0.1:{srv.app.http_port}/api/tickets", json=SUBMIT,
                       headers={"traceparent": header})
    assert reply.status_code == 200, reply.text
    rid = reply.json()["request_id"]
    assert stored_trace_ids(srv)[rid] == trace_id
    spans = exporter.get_finished_spans()
    http_span = server_span(spans, "POST")
    rpc = server_span(spans, "/opsledger.v1.TicketService/SubmitTicket")
    (call,) = [s for s in spans if s.kind == trace.SpanKind.CLIENT]  # the gateway's call
    (commit,) = [s for s in spans if s.name == "ledger commit"]
    assert {hex_id(http_span), hex_id(call), hex_id(rpc), hex_id(commit)} == {trace_id}
    assert http_span.parent.is_remote and trace.format_span_id(http_span.parent.span_id) == header.split("-")[2]
    assert rpc.parent.span_id == call.context.span_id
    assert commit.parent.span_id == rpc.context.span_id  # the commit inside the RPC
    assert commit.attributes["opsledger.ledger.command"] == "Submit"
    assert rpc.attributes["rpc.method"] == "SubmitTicket"


def test_a_given_trace_id_wins_and_without_a_traceparent_none_is_recorded(traced):
    srv, exporter = traced
    base = f"http://127.0.0.1:{srv.app.http_port}"
    _trace_id, header = traceparent()
    given = httpx.post(base + "/api/tickets", json={**SUBMIT, "trace_id": "order-7781"},
                       headers={"traceparent": header}).json()["request_id"]
    # The gateway's own HTTP span starts a trace here: that is not the caller's trace.
    plain = httpx.post(base + "/api/tickets", json=SUBMIT).json()["request_id"]
    malformed = httpx.post(base + "/api/tickets", json=SUBMIT,
                           headers={"traceparent": "00-" + "0" * 32 + "-" + "1" * 16 + "-01"}).json()["request_id"]
    ids = stored_trace_ids(srv)
    assert ids[given] == "order-7781"
    assert ids[plain] is None and ids[malformed] is None
    assert any(s.name == "/opsledger.v1.TicketService/SubmitTicket" for s in exporter.get_finished_spans())


def test_grpc_metadata_traceparent_is_recorded_with_tracing_off(root):
    srv = ServerThread(root, http_addr="127.0.0.1:0", tracing=OFF).start()
    try:
        trace_id, header = traceparent()
        with grpc.insecure_channel(srv.target) as ch:
            stub = tickets_pb2_grpc.TicketServiceStub(ch)
            req = tickets_pb2.SubmitTicketRequest(schema="TICKET_SUBMIT_V1",
                                                  request_type=tickets_pb2.RequestType.ACKNOWLEDGE)
            req.payload.update({"message_id": "m1"})
            by_metadata = stub.SubmitTicket(req, metadata=[("traceparent", header)]).request_id
        http_id, http_header = traceparent()
        by_header = httpx.post(f"http://127.0.0.1:{srv.app.http_port}/api/tickets", json=SUBMIT,
                               headers={"traceparent": http_header}).json()["request_id"]
        # a client inside a span of its own carries it, like any instrumented caller
        tracing, _ = memory_tracing()
        with tracing.tracer.start_as_current_span("caller") as span, OpsledgerClient(srv.target, retries=0) as c:
            by_client = c.submit("ACKNOWLEDGE", {"message_id": "m2"}).request_id
            caller_id = trace.format_trace_id(span.get_span_context().trace_id)
        ids = stored_trace_ids(srv)
    finally:
        srv.stop()
    assert ids[by_metadata] == trace_id and ids[by_header] == http_id and ids[by_client] == caller_id


def test_the_worker_continues_the_tickets_trace(traced):
    srv, server_spans = traced
    trace_id, header = traceparent()
    rid = httpx.post(f"http://127.0.0.1:{srv.app.http_port}/api/tickets", json=SUBMIT,
                     headers={"traceparent": header}).json()["request_id"]
    worker_tracing, worker_spans = memory_tracing()
    with OpsledgerClient(srv.target, retries=0) as c:
        worker = Worker(c, "w1", wait_seconds=0, tracer_provider=worker_tracing.provider)
        assert worker.run_once()
        assert c.ticket(rid).row.current_status == tickets_pb2.TicketStatus.DONE
    (handled,) = worker_spans.get_finished_spans()
    assert handled.name == "handle ACKNOWLEDGE" and hex_id(handled) == trace_id
    assert handled.attributes["opsledger.request_id"] == rid
    complete = server_span(server_spans.get_finished_spans(), "/opsledger.v1.TicketService/CompleteTicket")
    assert hex_id(complete) == trace_id and complete.parent.span_id == handled.context.span_id


def test_the_worker_carries_the_trace_even_when_it_records_no_spans(traced):
    srv, server_spans = traced
    trace_id, header = traceparent()
    httpx.post(f"http://127.0.0.1:{srv.app.http_port}/api/tickets", json=SUBMIT, headers={"traceparent": header})
    with OpsledgerClient(srv.target, retries=0) as c:
        assert Worker(c, "w1", wait_seconds=0).run_once()  # OpenTelemetry's default (no-op) provider
    complete = server_span(server_spans.get_finished_spans(), "/opsledger.v1.TicketService/CompleteTicket")
    assert hex_id(complete) == trace_id


def test_each_cycle_step_is_a_span_inside_the_run_cycle_rpc(root):
    root.mkdir(parents=True)
    write_bundle(root)
    tracing, exporter = memory_tracing()
    srv = ServerThread(root, tracing=tracing).start()
    try:
        with OpsledgerClient(srv.target, retries=0) as c:
            assert c.run_cycle().receipt.result
    finally:
        srv.stop()
    spans = exporter.get_finished_spans()
    rpc = server_span(spans, "/opsledger.v1.CycleService/RunCycle")
    steps = [s for s in spans if s.name.startswith("cycle ")]
    assert [s.name for s in sorted(steps, key=lambda s: s.start_time)] == [
        "cycle bundle", "cycle reco", "cycle summary", "cycle push", "cycle receipt"]
    assert all(s.parent.span_id == rpc.context.span_id for s in steps)


def test_off_unless_an_otlp_endpoint_is_set():
    assert from_environment({}) is OFF and not OFF.on
    assert not requested({"OTEL_SERVICE_NAME": "x"})
    assert requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"})
    assert requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert not requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_SDK_DISABLED": "true"})
    assert not requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_TRACES_EXPORTER": "none"})


@pytest.mark.slow
def test_a_server_process_exports_by_otlp_when_the_endpoint_is_set(root):
    receiver = OtlpReceiver()
    try:
        srv = ServerProcess(root, env=receiver.env)
        trace_id, header = traceparent()
        answer = httpx.post(srv.http_base + "/api/tickets", json=SUBMIT, headers={"traceparent": header})
        rid = answer.json()["request_id"]
        assert srv.terminate() == 0  # a clean stop exports what is queued
    finally:
        receiver.stop()
    line = json.loads((root / "state/tickets/ticket_requests.jsonl").read_text().splitlines()[0])
    assert line["request_id"] == rid and line["trace_id"] == trace_id
    names = {name for service, name, tid in receiver.spans if tid == trace_id and service == "opsledger"}
    assert {"/opsledger.v1.TicketService/SubmitTicket", "ledger commit"} <= names
    assert any(n.startswith("POST") for n in names)
