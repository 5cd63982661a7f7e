"""GET /api/tickets/events through the real gateway: SSE (ids, Last-Event-ID, heartbeat) and NDJSON."""
import orjson

from opsledger.server.gateway import streaming
from opsledger.server.ledger.jsonl.files import REQUESTS, RESULTS


def submit(gw, i):
    r = gw.http.post("/api/tickets", json={"request_type": "ACKNOWLEDGE", "payload": {"message_id": f"m{i}"}})
    assert r.status_code == 200, r.text
    return r.json()["request_id"]


def sse_frames(lines, n):
    """The next ``n`` frames from an iterator of lines (dicts of field -> value; comments under '')."""
    frames, current = [], {}
    for line in lines:
        if line == "":
            if current:
                frames.append(current)
                current = {}
                if len(frames) >= n:
                    return frames
            continue
        field, _, value = line.partition(":")
        current[field] = value[1:] if value.startswith(" ") else value
    return frames


def test_sse_ids_are_revisions_and_last_event_id_resumes(gw, root):
    ids = [submit(gw, i) for i in range(4)]
    gw.http.post("/api/tickets/consume", json={"request_id": ids[0], "processor_id": "w"})
    headers = {"accept": "text/event-stream"}
    with gw.http.stream("GET", "/api/tickets/events", params={"from_beginning": "true"}, headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        frames = sse_frames(r.iter_lines(), 6)
    bodies = [orjson.loads(f["data"]) for f in frames]
    assert bodies[0]["kind"] == "PROGRESS"
    assert [b["kind"] for b in bodies[1:]] == ["SUBMITTED"] * 4 + ["TRANSITION"]
    assert all(f["id"] == b["revision"] for f, b in zip(frames, bodies))
    requests = [orjson.loads(x) for x in (root / REQUESTS).read_bytes().splitlines()]
    results = [orjson.loads(x) for x in (root / RESULTS).read_bytes().splitlines()]
    for body, rec in zip(bodies[1:5], requests):
        assert {k: v for k, v in body["request"].items() if not (k == "idempotency_key" and v is None)} == rec
        assert body["result"] is None and body["request_type"] == "ACKNOWLEDGE" and body["status"] == "OPEN"
    assert bodies[5]["result"] == results[0]
    # An EventSource reconnecting sends its URL again plus Last-Event-ID: the stream goes on after it.
    headers["last-event-id"] = frames[2]["id"]
    with gw.http.stream("GET", "/api/tickets/events", params={"from_beginning": "true"}, headers=headers) as r:
        again = sse_frames(r.iter_lines(), 4)
    assert [f.get("id") for f in again] == [frames[2]["id"]] + [f["id"] for f in frames[3:6]]
    assert orjson.loads(again[0]["data"])["kind"] == "PROGRESS"


def test_ndjson_when_sse_is_not_asked_for(gw):
    rid = submit(gw, 0)
    with gw.http.stream("GET", "/api/tickets/events", params={"from_beginning": "true"}) as r:
        assert r.headers["content-type"].startswith("application/x-ndjson")
        lines = r.iter_lines()
        first, second = orjson.loads(next(lines)), orjson.loads(next(lines))
    assert first["result"]["kind"] == "PROGRESS"
    assert second["result"]["request_id"] == rid and second["result"]["kind"] == "SUBMITTED"


def test_live_events_and_heartbeat(gw, monkeypatch):
    monkeypatch.setattr(streaming, "HEARTBEAT_S", 0.2)
    with gw.http.stream("GET", "/api/tickets/events", headers={"accept": "text/event-stream"}) as r:
        lines = r.iter_lines()
        frames = sse_frames(lines, 2)  # the start, then silence: a heartbeat comment
        assert orjson.loads(frames[0]["data"])["kind"] == "PROGRESS"
        assert "" in frames[1] and "data" not in frames[1]
        rid = submit(gw, 1)
        frames = sse_frames(lines, 1)
        while "data" not in frames[0]:
            frames = sse_frames(lines, 1)
        assert orjson.loads(frames[0]["data"])["request_id"] == rid


def test_bad_requests_are_plain_400s(gw):
    submit(gw, 0)
    for params, field in (
        ({"after": "garbage"}, "after"),
        ({"status": "BOGUS"}, "status"),
        ({"request_type": "VALUE_UNSPECIFIED"}, "request_type"),
        ({"colour": "red"}, "colour"),
    ):
        r = gw.http.get("/api/tickets/events", params=params, headers={"accept": "text/event-stream"})
        assert r.status_code == 400, (params, r.text)
        assert r.headers["content-type"] == "application/json"
        assert field in r.json()["message"]
    r = gw.http.get("/api/tickets/events", headers={"accept": "text/event-stream", "last-event-id": "j1.0.0.zz"})
    assert r.status_code == 400 and r.json()["message"].startswith("after:")
