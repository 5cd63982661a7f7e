"""/metrics speaks the gRPC ecosystem's names, and the shipped dashboard queries only what is exported."""
import json
import re

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from opsledger.client.ledger_client import OpsledgerClient
from tests.cycle.conftest import write_bundle
from tests.helpers import REPO, ServerThread

DASHBOARD = REPO / "docs" / "grafana-dashboard.json"
TICKETS = "opsledger.v1.TicketService"


def samples(base: str) -> list:
    text = httpx.get(base + "/metrics").text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(all_samples, name: str, **labels) -> float:
    found = [s.value for s in all_samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else 0.0


def exercised_server(root):
    """A real server that has served unary calls (OK and refused), a cycle, health and a reflection stream."""
    root.mkdir(parents=True)
    write_bundle(root)
    srv = ServerThread(root, http_addr="127.0.0.1:0").start()
    with OpsledgerClient(srv.target, retries=0) as c:
        rid = c.submit("ACKNOWLEDGE", {"message_id": "m1"}).request_id
        c.consume(rid, "p")
        try:
            c.consume(rid, "p")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
        c.run_cycle()
    with grpc.insecure_channel(srv.target) as ch:
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
        answers = list(reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        assert len(answers) == 1
    return srv


def test_grpc_server_metrics_count_each_call_by_type_service_method_and_code(root):
    srv = exercised_server(root)
    try:
        got = samples(f"http://127.0.0.1:{srv.app.http_port}")
    finally:
        srv.stop()
    unary = {"grpc_type": "unary", "grpc_service": TICKETS}
    assert value(got, "grpc_server_started_total", grpc_method="SubmitTicket", **unary) == 1
    assert value(got, "grpc_server_handled_total", grpc_method="SubmitTicket", grpc_code="OK", **unary) == 1
    assert value(got, "grpc_server_started_total", grpc_method="ConsumeTicket", **unary) == 2
    assert value(got, "grpc_server_handled_total", grpc_method="ConsumeTicket", grpc_code="OK", **unary) == 1
    assert value(got, "grpc_server_handled_total", grpc_method="ConsumeTicket", grpc_code="FAILED_PRECONDITION",
                 **unary) == 1
    assert value(got, "grpc_server_handling_seconds_count", grpc_method="ConsumeTicket", **unary) == 2
    assert value(got, "grpc_server_handling_seconds_bucket", grpc_method="ConsumeTicket", le="+Inf", **unary) == 2
    assert value(got, "grpc_server_msg_received_total", grpc_method="ConsumeTicket", **unary) == 2
    assert value(got, "grpc_server_msg_sent_total", grpc_method="ConsumeTicket", **unary) == 1  # the refusal sends none
    assert value(got, "grpc_server_handled_total", grpc_service="opsledger.v1.CycleService", grpc_method="RunCycle",
                 grpc_code="OK", grpc_type="unary") == 1
    assert value(got, "grpc_server_handled_total", grpc_service="grpc.health.v1.Health", grpc_method="Check",
                 grpc_code="OK", grpc_type="unary") == 1
    stream = {"grpc_type": "bidi_stream", "grpc_service": "grpc.reflection.v1alpha.ServerReflection",
              "grpc_method": "ServerReflectionInfo"}
    assert value(got, "grpc_server_started_total", **stream) == 1
    assert value(got, "grpc_server_handled_total", grpc_code="OK", **stream) == 1
    assert value(got, "grpc_server_msg_received_total", **stream) == 1
    assert value(got, "grpc_server_msg_sent_total", **stream) == 1
    # the service's own families are still there beside them
    assert value(got, "opsledger_rpcs_total", method="SubmitTicket", code="OK") == 1


_FUNCTIONS = {"sum", "rate", "irate", "increase", "histogram_quantile", "clamp_min", "max", "min", "avg",
              "count", "by", "without"}
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def queried(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names it is filtered or grouped by) for each selector of a PromQL expression."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and legends say nothing about names
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range durations
    expr = re.sub(r"(?<![a-zA-Z0-9_:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", "", expr)  # numbers
    grouped = {g for clause in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr) for g in _IDENT.findall(clause)}
    expr = re.sub(r"\b(?:by|without)\s*\([^)]*\)", "", expr)
    out = []
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{([^}]*)\})?", expr):
        name = m.group(1)
        if name in _FUNCTIONS or expr[m.end():].lstrip().startswith("("):
            continue
        matchers = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(3) or ""))
        out.append((name, matchers | grouped))
    return out


def test_queried_selector_parsing_finds_names_and_labels():
    got = queried('histogram_quantile(0.99, sum by (le, grpc_method) (rate(x_bucket{job=~"$job", a="b{c}"}[5m]))) '
                  '/ clamp_min(sum(rate(y_total[1m])), 1e-9)')
    assert got == [("x_bucket", {"job", "a", "le", "grpc_method"}), ("y_total", {"le", "grpc_method"})]


def test_every_metric_the_dashboard_queries_is_exported(root):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    job_query = next(v["query"] for v in dashboard["templating"]["list"] if v["name"] == "job")
    metric, label = re.fullmatch(r"label_values\((\w+), *(\w+)\)", job_query).groups()
    srv = exercised_server(root)
    try:
        got = samples(f"http://127.0.0.1:{srv.app.http_port}")
    finally:
        srv.stop()
    exported: dict[str, set[str]] = {}
    for s in got:
        exported.setdefault(s.name, set()).update(s.labels)
    selectors = [sel for e in exprs for sel in queried(e)] + [(metric, {label})]
    assert {"grpc_server_started_total", "grpc_server_handled_total",
            "grpc_server_handling_seconds_bucket"} <= {name for name, _ in selectors}
    for name, labels in selectors:
        assert name in exported, f"the dashboard queries {name}, which /metrics does not export"
        # job is the scraper's own label; every other label must be one the series carries
        missing = labels - {"job"} - exported[name]
        assert not missing, f"{name} has no label(s) {sorted(missing)}"
