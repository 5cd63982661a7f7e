"""Fuzzing with hypothesis: every RPC's request fields, raw HTTP bodies, bundles.

Properties: no INTERNAL/UNKNOWN over gRPC, no 5xx over HTTP, no crash, and no
line written for a refused input. Bundles: whatever the bundle file holds,
the cycle writes a receipt that verifies, with a result from the table.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

import grpc
import httpx
from google.protobuf import struct_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsledger.server.artifacts.files import FileArtifacts
from opsledger.server.common.canonical import pretty, sha256_hex
from opsledger.server.cycle.bundle import LATEST_REF
from opsledger.server.cycle.receipt import RESULT_TABLE
from opsledger.server.cycle.runner import CycleRunner
from opsledger.server.cycle.verify import verify_receipt
from opsledger.server.ledger.jsonl.store import REQUESTS, RESULTS
from opsledger.v1 import tickets_pb2 as pb
from opsledger.v1 import tickets_pb2_grpc
from tests.helpers import ServerThread

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = json.loads((REPO / "examples" / "strategy_example.json").read_text(encoding="utf-8"))

# Unicode edge cases on top of random text: NUL, BOM, RTL marks, astral emoji, combining marks, huge.
EDGE = st.sampled_from(["", "\x00", "\ufeff", "\u202e", "😀" * 50, "e\u0301", "a" * 3000, "%2e%2e/x", "../../etc",
                        "<img src=x onerror=alert(1)>", "${SECRET}", "latest", "\\", "ﾃｽﾄ", "\U0010ffff"])
TEXT = st.one_of(EDGE, st.text(st.characters(blacklist_categories=("Cs",)), max_size=300))
ENUM = st.integers(min_value=-3, max_value=12)
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False), st.integers(-2**40, 2**40), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
UUIDISH = st.one_of(st.uuids().map(str), TEXT)


def _struct(d):
    s = struct_pb2.Struct()
    try:
        s.update(d)
    except (ValueError, TypeError):
        pass
    return s


REQUESTS_BY_RPC = {
    "SubmitTicket": st.builds(
        lambda schema, rtype, payload, trace, key: pb.SubmitTicketRequest(
            schema=schema, request_type=rtype, payload=_struct(payload),
            **({"trace_id": trace} if trace is not None else {}),
            **({"idempotency_key": key} if key is not None else {})),
        st.one_of(st.just(""), st.just("TICKET_SUBMIT_V1"), TEXT), ENUM,
        st.one_of(st.dictionaries(st.sampled_from(["mode", "reason", "lookback_days", "scope", "message_id", "x"]),
                                  JSONISH, max_size=5), st.dictionaries(TEXT, JSONISH, max_size=3)),
        st.one_of(st.none(), TEXT), st.one_of(st.none(), TEXT)),
    "ConsumeTicket": st.builds(lambda rid, p, m: pb.ConsumeTicketRequest(request_id=rid, processor_id=p, message=m),
                               UUIDISH, TEXT, TEXT),
    "CompleteTicket": st.builds(lambda rid, s, p, m, a: pb.CompleteTicketRequest(
        request_id=rid, status=s, processor_id=p, message=m, artifacts=a),
        UUIDISH, ENUM, TEXT, TEXT, st.lists(TEXT, max_size=70)),
    "GetBoard": st.builds(lambda n, t, s, r: pb.GetBoardRequest(page_size=n, page_token=t, status=s, request_type=r),
                          st.integers(-2**31, 2**31 - 1), TEXT, st.lists(ENUM, max_size=5), st.lists(ENUM, max_size=5)),
    "GetTicket": st.builds(lambda rid: pb.GetTicketRequest(request_id=rid), UUIDISH),
    "ConsumeNext": st.builds(lambda p, t, w: pb.ConsumeNextRequest(processor_id=p, request_types=t, wait_seconds=w),
                             TEXT, st.lists(ENUM, max_size=4),
                             st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 0.05))),
    "ReapStaleTickets": st.builds(lambda t, m, d: pb.ReapStaleTicketsRequest(threshold_seconds=t, max_clean=m, dry_run=d),
                                  st.integers(-2**31, 2**31 - 1), st.integers(-2**31, 2**31 - 1), st.booleans()),
}


def _sizes(root: Path) -> tuple[int, int]:
    return tuple((root / p).stat().st_size if (root / p).exists() else 0 for p in (REQUESTS, RESULTS))


BAD_CODES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


def fuzz_rpcs(root: Path, examples: int, log=print) -> dict:
    srv = ServerThread(root, http_addr="127.0.0.1:0").start()
    base = f"http://127.0.0.1:{srv.app.http_port}"
    stats = {"grpc_examples": 0, "http_examples": 0, "malformed_pb_examples": 0, "duplicate_key_examples": 0,
             "failures": []}
    channel = grpc.insecure_channel(srv.target)
    stub = tickets_pb2_grpc.TicketServiceStub(channel)
    try:
        seed_ids = [stub.SubmitTicket(pb.SubmitTicketRequest(
            request_type=pb.RequestType.ACKNOWLEDGE, payload=_struct({"message_id": f"m{i}"}))).request_id
            for i in range(5)]
        for name, strategy in REQUESTS_BY_RPC.items():
            method = getattr(stub, name)

            @settings(max_examples=examples, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(strategy, st.sampled_from(seed_ids + [""]))
            def check(request, known_id):
                if hasattr(request, "request_id") and known_id and request.request_id == "":
                    request.request_id = known_id  # sometimes aim at a real ticket
                before = _sizes(root)
                try:
                    method(request, timeout=10)  # noqa: B023 - check() runs within this iteration
                except grpc.RpcError as exc:
                    if exc.code() in BAD_CODES:
                        stats["failures"].append(f"{name}: {exc.code().name} {exc.details()} for {request!r}"[:500])  # noqa: B023
                    if _sizes(root) != before and exc.code() != grpc.StatusCode.UNAVAILABLE:
                        stats["failures"].append(f"{name}: refused ({exc.code().name}) but the log grew")  # noqa: B023
                stats["grpc_examples"] += 1

            check()
            log(f"fuzz {name}: {stats['grpc_examples']} gRPC examples so far")

        routes = ["/api/tickets", "/api/tickets/consume", "/api/tickets/complete", "/api/tickets/consume-next",
                  "/api/tickets/reaper/run", "/api/live/cycle/run"]
        http = httpx.Client(base_url=base, timeout=30)

        @settings(max_examples=examples * 3, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(st.sampled_from(routes), st.one_of(st.binary(max_size=400),
                                                 JSONISH.map(lambda v: json.dumps(v).encode()),
                                                 st.just(b'{"request_id":"\xff\xfe"}')),
               st.sampled_from(["application/json", "text/plain", "", "application/x-www-form-urlencoded"]),
               st.one_of(st.none(), st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b)
                         .map(lambda b: b"Bearer " + b)))
        def http_bodies(route, body, ctype, auth):
            before = _sizes(root)
            headers = {"content-type": ctype} if ctype else {}
            if auth is not None:
                headers["authorization"] = auth
            try:
                r = http.post(route, content=body, headers=headers)
            except httpx.LocalProtocolError:
                return  # a header the client itself will not send
            if r.status_code >= 500:
                stats["failures"].append(f"POST {route} -> {r.status_code} for {body[:80]!r}")
            if r.status_code >= 400 and _sizes(root) != before:
                stats["failures"].append(f"POST {route} refused {r.status_code} but the log grew")
            stats["http_examples"] += 1

        http_bodies()

        @settings(max_examples=examples * 2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(st.sampled_from(["/api/tickets/latest", "/api/tickets/", "/api/live/cycle/latest"]),
               st.lists(st.tuples(st.sampled_from(["status", "request_type", "page_size", "page_token", "x"]), TEXT),
                        max_size=4), UUIDISH)
        def http_queries(route, params, rid):
            path = route + (quote(rid, safe="") if route.endswith("/") else "")
            r = http.get(path, params=params)
            if r.status_code >= 500:
                stats["failures"].append(f"GET {path} {params!r} -> {r.status_code}")
            stats["http_examples"] += 1

        http_queries()
        fuzz_malformed_protobuf(channel, root, examples, stats)
        log(f"fuzz malformed protobuf: {stats['malformed_pb_examples']} examples")
        fuzz_duplicate_keys(http, root, examples, stats)
        log(f"fuzz duplicate-key JSON: {stats['duplicate_key_examples']} examples")
        http.close()
        log(f"fuzz HTTP: {stats['http_examples']} examples")
    finally:
        channel.close()
        srv.stop(1)
    return stats


def _varint(n: int) -> bytes:
    out = b""
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out += bytes([low | 0x80])
        else:
            return out + bytes([low])


def nested_struct_submit(depth: int) -> bytes:
    """A wire-valid SubmitTicketRequest whose payload Struct nests ``depth`` levels."""
    inner = b""
    for _ in range(depth):
        value = b"\x2a" + _varint(len(inner)) + inner  # Value.struct_value
        entry = b"\x0a\x01a\x12" + _varint(len(value)) + value  # map entry {key "a", value}
        inner = b"\x0a" + _varint(len(entry)) + entry  # Struct.fields
    return b"\x10\x03\x1a" + _varint(len(inner)) + inner  # request_type ACKNOWLEDGE, payload


# RunCycle is left out: a mutation that decodes to confirm=true would run cycles, which is not the point here.
RAW_METHODS = [f"/opsledger.v1.TicketService/{m}" for m in REQUESTS_BY_RPC] + [
    "/opsledger.v1.CycleService/GetLatestCycle", "/opsledger.v1.CycleService/GetLatestReco"]


def _mutate(raw: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    data = bytearray(raw)
    for at, mask in flips:
        if data:
            data[at % len(data)] ^= mask or 1
    return bytes(data[:cut] if cut is not None else data)


def fuzz_malformed_protobuf(channel, root: Path, examples: int, stats: dict) -> None:
    """Bytes that are not the method's message (random, bit-flipped, truncated, nested too deep).

    Property: never INTERNAL/UNKNOWN (undecodable is INVALID_ARGUMENT), and a
    refusal writes nothing.
    """
    valid = pb.SubmitTicketRequest(request_type=pb.RequestType.ACKNOWLEDGE, payload=_struct({"message_id": "m"}))
    raw_calls = {m: channel.unary_unary(m, request_serializer=lambda b: b, response_deserializer=lambda b: b)
                 for m in RAW_METHODS}
    body = st.one_of(
        st.binary(max_size=300),
        st.builds(_mutate, st.just(valid.SerializeToString()),
                  st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
                  st.one_of(st.none(), st.integers(0, 40))),
        st.integers(95, 400).map(nested_struct_submit),
    )

    @settings(max_examples=examples * 2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(RAW_METHODS), body)
    def check(method, raw):
        before = _sizes(root)
        try:
            raw_calls[method](raw, timeout=10)
        except grpc.RpcError as exc:
            if exc.code() in BAD_CODES:
                stats["failures"].append(f"{method}: {exc.code().name} {exc.details()} for {raw[:60]!r}"[:500])
            if _sizes(root) != before and exc.code() != grpc.StatusCode.UNAVAILABLE:
                stats["failures"].append(f"{method}: refused ({exc.code().name}) but the log grew")
        stats["malformed_pb_examples"] += 1

    check()


_DUP_ROUTES = {
    "/api/tickets": {"request_type": "ACKNOWLEDGE", "payload": {"message_id": "m"}},
    "/api/tickets/consume": {"request_id": "6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e"},
    "/api/tickets/complete": {"request_id": "6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e", "status": "DONE", "message": "m"},
    "/api/tickets/consume-next": {"processor_id": "w"},
    "/api/tickets/reaper/run": {"dry_run": True},
    "/api/live/cycle/run": {"confirm": False},
}


def _with_duplicate(base: dict, key: str, first, second, in_payload: bool) -> bytes:
    """``base`` as JSON text with ``key`` given twice (at the top, or inside ``payload``)."""
    def obj(d: dict, dup: tuple | None) -> str:
        parts = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in d.items() if not dup or k != dup[0]]
        if dup:
            parts += [f"{json.dumps(dup[0])}: {json.dumps(dup[1])}", f"{json.dumps(dup[0])}: {json.dumps(dup[2])}"]
        return "{" + ", ".join(parts) + "}"

    if in_payload and "payload" in base:
        rest = {k: v for k, v in base.items() if k != "payload"}
        text = obj(rest, None)[:-1] + (", " if rest else "") + '"payload": ' + obj(base["payload"], (key, first, second)) + "}"
        return text.encode()
    return obj(base, (key, first, second)).encode()


def fuzz_duplicate_keys(http, root: Path, examples: int, stats: dict) -> None:
    """JSON objects with a key given twice: always a 400 naming the key, nothing written."""

    @settings(max_examples=examples * 2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(sorted(_DUP_ROUTES)), st.data(), JSONISH, JSONISH, st.booleans())
    def check(route, data, first, second, in_payload):
        base = _DUP_ROUTES[route]
        keys = sorted(base["payload"]) if in_payload and "payload" in base else sorted(base) + ["bogus", "x"]
        key = data.draw(st.one_of(st.sampled_from(keys), TEXT))
        raw = _with_duplicate(base, key, first, second, in_payload)
        before = _sizes(root)
        r = http.post(route, content=raw, headers={"content-type": "application/json"})
        ok = r.status_code == 400 and "more than once" in r.json().get("message", "")
        if not ok:
            stats["failures"].append(f"POST {route} duplicate key {key!r} -> {r.status_code} {r.text[:120]}")
        if _sizes(root) != before:
            stats["failures"].append(f"POST {route} duplicate key {key!r}: the log grew")
        stats["duplicate_key_examples"] += 1

    check()


def fuzz_bundles(work: Path, examples: int, log=print) -> dict:
    stats = {"bundle_examples": 0, "failures": [], "results": {}}
    allowed = {row for _cond, row in RESULT_TABLE}

    def mutate(base: dict, path: list, value, rehash: bool = False):
        doc = json.loads(json.dumps(base))
        if rehash:  # keep the hash right, so the odd strategy reaches the reco step
            doc = _set(doc, path, value)
            if isinstance(doc.get("strategy"), (dict, list)) and isinstance(doc.get("integrity"), dict):
                doc["integrity"]["payload_sha256"] = sha256_hex(doc["strategy"])
            return doc
        node = doc
        for key in path[:-1]:
            if isinstance(node, dict) and key in node:
                node = node[key]
            else:
                return doc
        if isinstance(node, dict) and path:
            node[path[-1]] = value
        return doc

    def _set(doc: dict, path: list, value) -> dict:
        return mutate(doc, path, value)

    from opsledger.server.common.clock import Clock, iso
    from opsledger.server.cycle.bundle import make_bundle

    good = make_bundle(EXAMPLE, iso(Clock().now()), "fuzz", None, {"pc_host": "fuzz"}, [])
    paths = [["schema"], ["created_at"], ["strategy"], ["strategy", "universe"], ["strategy", "risk_limits"],
             ["strategy", "position_limits"], ["strategy", "decision_params"], ["integrity"], ["evidence_refs"],
             ["strategy", "name"], ["integrity", "payload_sha256"], ["strategy", "rebalance_rule"]]

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(
        st.builds(lambda p, v: pretty(mutate(good, p, v, rehash=True)), st.sampled_from(paths), JSONISH),
        st.builds(lambda p, v: pretty(mutate(good, p, v, rehash=True)),
                  st.sampled_from([["strategy", "decision_params"], ["strategy", "universe"],
                                   ["strategy", "position_limits"], ["evidence_refs"]]),
                  st.one_of(JSONISH, st.lists(st.one_of(TEXT, st.fixed_dictionaries({"ticker": TEXT})), max_size=5),
                            st.fixed_dictionaries({"scores": st.dictionaries(TEXT, JSONISH, max_size=5)}),
                            st.fixed_dictionaries({"max_positions": st.integers(-3, 50),
                                                   "min_cash_pct": st.floats(-1, 2)}))),
        st.builds(lambda p, v: pretty(mutate(good, p, v)), st.sampled_from(paths), JSONISH),
        JSONISH.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200)))
    def check(raw):
        root = Path(tempfile.mkdtemp(dir=work))
        try:
            (root / LATEST_REF).parent.mkdir(parents=True)
            (root / LATEST_REF).write_bytes(raw)
            counts = {"OPEN": 0, "IN_PROGRESS": 0, "DONE": 0, "FAILED": 0}
            runner = CycleRunner(FileArtifacts(root), lambda _now: (counts, {"done": 0, "failed": 0, "stale_in_progress": 0}),
                                 console=lambda _t: None)
            receipt = runner.run()
            outcome = (receipt["result"], receipt["decision"], receipt["reason"])
            if outcome not in allowed:
                stats["failures"].append(f"outcome {outcome} not in the result table")
            problems = verify_receipt(FileArtifacts(root), root / receipt["snapshot_ref"])
            if problems:
                stats["failures"].append(f"receipt does not verify: {problems}")
            stats["results"][receipt["reason"]] = stats["results"].get(receipt["reason"], 0) + 1
        except Exception as exc:  # noqa: BLE001 - any exception is the finding
            stats["failures"].append(f"cycle raised {type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(root, ignore_errors=True)
        stats["bundle_examples"] += 1

    check()
    log(f"fuzz bundles: {stats['bundle_examples']} examples, reasons {stats['results']}")
    return stats

