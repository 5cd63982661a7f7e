"""Logs, metrics and graceful stop, from real servers."""
import fcntl
import json
import os
import re
import threading
import time

import grpc
import httpx
import orjson

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.ledger.jsonl.store import LOCK, RESULTS
from tests.cycle.conftest import write_bundle
from tests.helpers import ServerProcess, ServerThread

TOKEN = "log-secret-9b1e77aa"


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_one_json_line_per_call_and_no_secret_anywhere(root):
    srv = ServerProcess(root, env={"OPSLEDGER_TOKEN": TOKEN})
    http = f"http://127.0.0.1:{srv.info['http_port']}"
    try:
        with OpsledgerClient(srv.target, token=TOKEN, retries=0) as c:
            rid = c.submit("ACKNOWLEDGE", {"message_id": "payload-marker-7731"}).request_id
            c.consume(rid, "proc-42")
            c.board()
        with OpsledgerClient(srv.target, token="not-the-token", retries=0) as bad:
            try:
                bad.complete(rid, "DONE", "proc-42")
            except grpc.RpcError:
                pass
        httpx.post(http + "/api/tickets/complete",
                   json={"request_id": rid, "status": "DONE", "processor_id": "proc-42", "message": "ok"},
                   headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        assert srv.terminate() == 0
    text = srv.log()
    assert TOKEN not in text and "not-the-token" not in text and "payload-marker-7731" not in text
    assert "Bearer" not in text and "authorization" not in text.lower().replace('"auth": "on"', "")
    lines = json_lines(text)
    started = [x for x in lines if x["event"] == "started"]
    assert started and started[0]["auth"] == "on" and started[0]["fsync"] == "always" and started[0]["root"]
    assert started[0]["store"] == "jsonl"  # the ledger backend in use is logged at start-up
    rpcs = [x for x in lines if x["event"] == "rpc"]
    assert [(x["method"].rsplit("/", 1)[1], x["code"]) for x in rpcs] == [
        ("SubmitTicket", "OK"), ("ConsumeTicket", "OK"), ("GetBoard", "OK"),
        ("CompleteTicket", "UNAUTHENTICATED"), ("CompleteTicket", "OK")]
    for x in rpcs:
        assert {"method", "code", "duration_ms", "request_id", "processor_id", "peer", "timestamp"} <= set(x)
        assert x["duration_ms"] >= 0
    assert rpcs[1]["request_id"] == rid and rpcs[1]["processor_id"] == "proc-42"
    assert rpcs[4]["via"] == "127.0.0.1"  # came through the gateway
    https = [x for x in lines if x["event"] == "http"]
    assert len(https) == 1 and https[0]["status"] == 200 and https[0]["route"] == "/api/tickets/complete"


def scrape(base) -> dict[str, float]:
    out = {}
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def delta(after, before, name):
    return after.get(name, 0.0) - before.get(name, 0.0)


def test_metrics_move_by_exactly_the_calls_made(root):
    root.mkdir(parents=True)
    write_bundle(root)
    srv = ServerThread(root, http_addr="127.0.0.1:0").start()
    base = f"http://127.0.0.1:{srv.app.http_port}"
    try:
        before = scrape(base)
        with OpsledgerClient(srv.target, retries=0) as c:
            ids = [c.submit("ACKNOWLEDGE", {"message_id": f"m{i}"}).request_id for i in range(3)]
            c.consume(ids[0])
            try:
                c.consume(ids[0])
            except grpc.RpcError:
                pass
            c.run_cycle()
        httpx.get(base + "/api/tickets/latest")
        after = scrape(base)
    finally:
        srv.stop()
    assert delta(after, before, 'opsledger_rpcs_total{code="OK",method="SubmitTicket"}') == 3
    assert delta(after, before, 'opsledger_rpcs_total{code="OK",method="ConsumeTicket"}') == 1
    assert delta(after, before, 'opsledger_rpcs_total{code="FAILED_PRECONDITION",method="ConsumeTicket"}') == 1
    assert delta(after, before, 'opsledger_rpcs_total{code="OK",method="GetBoard"}') == 1  # via the gateway
    assert delta(after, before, 'opsledger_rpcs_total{code="OK",method="RunCycle"}') == 1
    assert delta(after, before, 'opsledger_cycles_total{result="OK"}') == 1
    assert delta(after, before, 'opsledger_http_requests_total{method="GET",route="/api/tickets/latest",status="200"}') == 1
    assert delta(after, before, "opsledger_rpc_latency_seconds_count{method=\"SubmitTicket\"}") == 3
    assert delta(after, before, "opsledger_store_batch_lines_sum") == 4  # 3 requests + 1 result
    assert delta(after, before, "opsledger_store_fsync_seconds_count") >= 1
    assert after['opsledger_tickets{status="OPEN"}'] == 2 and after['opsledger_tickets{status="IN_PROGRESS"}'] == 1
    assert after["opsledger_store_read_only"] == 0


def test_sigterm_during_50_in_flight_completes(root):
    srv = ServerProcess(root, "--grace", "20")
    with OpsledgerClient(srv.target, retries=0) as c:
        ids = [c.submit("ACKNOWLEDGE", {"message_id": f"m{i}"}).request_id for i in range(50)]
        for rid in ids:
            c.consume(rid, "w")
    answers, errors = {}, []
    # Hold the ledger's inter-process lock: the 50 completes reach the server
    # and wait in its writer, really in flight when SIGTERM lands.
    fd = os.open(root / LOCK, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)

    def complete(rid):
        try:
            with OpsledgerClient(srv.target, retries=0, timeout=30) as c:
                answers[rid] = c.complete(rid, "DONE", "w", "done").result_id
        except grpc.RpcError as exc:
            errors.append(exc.code())

    threads = [threading.Thread(target=complete, args=(rid,)) for rid in ids]
    for t in threads:
        t.start()
    time.sleep(1.5)
    srv.proc.send_signal(15)
    time.sleep(0.5)
    with OpsledgerClient(srv.target, retries=0, timeout=3) as late:
        try:
            late.board()
            refused = None
        except grpc.RpcError as exc:
            refused = exc.code()
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    for t in threads:
        t.join(30)
    assert srv.proc.wait(30) == 0
    assert errors == [] and len(answers) == 50
    assert refused == grpc.StatusCode.UNAVAILABLE  # new calls refused while draining
    logged = {r["request_id"]: r["result_id"] for r in map(orjson.loads, (root / RESULTS).read_bytes().splitlines())
              if r["status"] == "DONE"}
    assert logged == answers
    assert re.search(r'"event": "draining"', srv.log())
