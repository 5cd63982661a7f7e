"""The gateway's own refusals name the field, in the FAIL body a gRPC refusal gets.

Real HTTP to a real server (uvicorn on port 0, grpc.aio behind).
"""
import socket
import time

import httpx

from opsledger.client.limits import MAX_MESSAGE_BYTES
from tests.gateway.test_gateway import RECONCILE, logs
from tests.helpers import ServerThread

BAD_REQUEST = "google.rpc.BadRequest"


def violation(r: httpx.Response) -> tuple[str, str]:
    body = r.json()
    assert body["result"] == "FAIL", body
    (detail,) = body["details"]
    assert detail["@type"] == BAD_REQUEST, detail
    (v,) = detail["field_violations"]
    return v["field"], v["description"]


def test_wrong_content_type_names_content_type(gw):
    before = logs(gw)
    for headers in ({"content-type": "text/plain"}, {}):
        r = gw.http.post("/api/tickets", content=b'{"request_type":"ACKNOWLEDGE","payload":{"message_id":"m"}}',
                         headers=headers)
        assert r.status_code == 415, r.text
        assert r.json()["code"] == "INVALID_ARGUMENT"
        field, rule = violation(r)
        assert field == "content-type" and "application/json" in rule
    assert logs(gw) == before


def test_unprintable_authorization_names_authorization(gw):
    before = logs(gw)
    r = gw.http.post("/api/tickets", json=RECONCILE, headers={"Authorization": "Bearer \xe9t\xe9".encode("latin-1")})
    assert r.status_code == 400, r.text
    assert violation(r) == ("authorization", "header must be printable ASCII")
    assert logs(gw) == before


def test_both_size_limits_give_one_413_shape(gw):
    """Over the limit as JSON bytes (declared or streamed) and over it only as protobuf: the same body shape."""
    before = logs(gw)
    huge = b'{"request_type":"ACKNOWLEDGE","payload":{"message_id":"' + b"x" * (MAX_MESSAGE_BYTES + 10) + b'"}}'

    def chunks():
        for i in range(0, len(huge), 65536):
            yield huge[i:i + 65536]

    declared = gw.http.post("/api/tickets", content=huge, headers={"content-type": "application/json"})
    streamed = gw.http.post("/api/tickets", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in streamed.request.headers  # chunked: only the running count can stop it
    # Small as JSON, over the limit as protobuf: each 0 is 11+ bytes as a protobuf Value.
    zeros = b'{"request_type":"ACKNOWLEDGE","payload":{"message_id":"m","n":[' + b",".join([b"0"] * 300_000) + b"]}}"
    assert len(zeros) < MAX_MESSAGE_BYTES
    as_protobuf = gw.http.post("/api/tickets", content=zeros, headers={"content-type": "application/json"})
    assert as_protobuf.json()["message"].startswith("body: encodes to")
    for r in (declared, streamed, as_protobuf):
        assert r.status_code == 413, r.text[:300]
        assert r.json()["code"] == "RESOURCE_EXHAUSTED" and r.json()["message"].startswith("body")
        assert violation(r) == ("body", "over the message size limit")
    assert logs(gw) == before


def test_over_the_connection_cap_anything_but_health_gets_the_busy_body(root):
    """Every connection busy: a further one may ask /healthz only; anything else is 503 in the FAIL shape."""
    srv = ServerThread(root, http_addr="127.0.0.1:0", http_max_connections=2).start()
    port = srv.app.http_port
    held = []
    try:
        for i in range(2):  # two HTTP long-polls keep both connections busy
            s = socket.create_connection(("127.0.0.1", port))
            body = b'{"processor_id":"w%d","wait_seconds":30}' % i
            s.sendall(b"POST /api/tickets/consume-next HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                      b"content-length: %d\r\n\r\n" % len(body) + body)
            held.append(s)
        deadline = time.monotonic() + 30
        while srv.app.metrics.registry.get_sample_value(
                "opsledger_calls_in_progress", {"budget": "long-polls"}) != 2:
            assert time.monotonic() < deadline, "the two long-polls never arrived"
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            r = http.get("/api/tickets/latest")
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"result": "FAIL", "message": "server at its connection limit; retry later",
                            "code": "UNAVAILABLE", "details": []}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert http.get("/healthz").json()["status"] == "SERVING"
    finally:
        for s in held:
            s.close()
        srv.stop()
