"""Replay's fast recognition of the store's own (canonical) log lines.

A line in the form the store writes is taken by one pattern (and, for
requests, orjson re-encoding it to the same bytes); every other line takes
the full checks. These tests hold the fast forms to the full checks: they may
only accept what the full checks accept, with the same values, and a line
that differs from the canonical form (a repeated key, another key order, an
uppercase id, an impossible time) is still refused at start-up naming
file:line and the full checks' reason. Real files, a real store."""
import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsledger.server.ledger import records
from opsledger.server.ledger.jsonl.store import REQUESTS, RESULTS, CorruptLog, JsonlLedger
from opsledger.server.ledger.validation import REQUEST_TYPES

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
ASCII = st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=12)


def _uuid(rnd):
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


@st.composite
def moments(draw):
    base = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(-10**9, 10**9)))
    offset = timedelta(minutes=draw(st.sampled_from([0, 540, -300, 330, -720, 765])))
    return base.astimezone(timezone(offset)).isoformat(timespec="seconds")


@st.composite
def request_lines(draw, text=TEXT):
    rnd = random.Random(draw(st.integers(0, 2**32)))
    rec = records.request_record(_uuid(rnd), draw(moments()), draw(st.sampled_from(REQUEST_TYPES)),
                                 draw(st.dictionaries(text, st.one_of(text, st.integers(-2**40, 2**40), st.none(),
                                                                      st.lists(text, max_size=2)), max_size=3)),
                                 draw(st.none() | text), draw(st.none() | text))
    return records.encode(rec)[:-1]


@st.composite
def result_lines(draw, text=TEXT):
    rnd = random.Random(draw(st.integers(0, 2**32)))
    rec = records.result_record(_uuid(rnd), _uuid(rnd), draw(moments()),
                                draw(st.sampled_from(["IN_PROGRESS", "DONE", "FAILED"])), draw(text), draw(text),
                                draw(st.lists(text, max_size=3)))
    return records.encode(rec)[:-1]


def _mutate(line: bytes, how: int, rnd: random.Random) -> bytes:
    """One way a line can differ from what the store writes."""
    i = rnd.randrange(len(line))
    if how == 0:
        return line[:i] + bytes([rnd.randrange(256)]) + line[i + 1:]  # a byte changed
    if how == 1:
        return line[:i] + line[i + 1:]  # a byte lost
    if how == 2:
        return line[:i] + bytes([rnd.choice(b' "\\{}[],:0aZ\x00\xc3')]) + line[i:]  # a byte added
    rec = json.loads(line)
    keys = list(rec)
    if how == 3:  # a key repeated (same value, or another one)
        k = rnd.choice(keys)
        extra = json.dumps({k: rec[k] if rnd.random() < 0.5 else "OPEN"}, separators=(",", ":"))[1:-1]
        return line[:-1] + b"," + extra.encode() + b"}"
    if how == 4:  # keys in another order
        rnd.shuffle(keys)
        return json.dumps({k: rec[k] for k in keys}, separators=(",", ":"), ensure_ascii=False).encode()
    if how == 5:  # the same record spelled otherwise (spaces, \u escapes)
        return json.dumps(rec).encode()
    if how == 6:  # an id in capitals
        return line.replace(rec["request_id"].encode(), rec["request_id"].upper().encode())
    # a time with an impossible field: hour 24, month 13, day 30 of February, second 60
    key = "requested_at" if "requested_at" in rec else "processed_at"
    t = rec[key]
    bad = rnd.choice([t[:11] + "24" + t[13:], t[:5] + "13" + t[7:], t[:5] + "02-30" + t[10:], t[:17] + "60" + t[19:]])
    return line.replace(t.encode(), bad.encode())


def _strict(parse, line):
    try:
        return parse(line)
    except records.LineError as exc:
        return exc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_canonical_forms_accept_only_what_the_full_checks_accept_with_the_same_values(data):
    rnd = random.Random(data.draw(st.integers(0, 2**32)))
    how = data.draw(st.sampled_from([None, 0, 1, 2, 3, 4, 5, 6, 7]))
    req = data.draw(request_lines())
    res = data.draw(result_lines())
    if how is not None:
        req, res = _mutate(req, how, rnd), _mutate(res, how, rnd)
    full = _strict(records.parse_request_line_strict, req)
    fast = records.canonical_requests([req])
    if fast is not None:
        assert not isinstance(full, Exception), (req, full)
        (rec, epoch), = fast
        assert (list(rec.items()), epoch) == (list(full[0].items()), full[1])
    elif how is None:
        pytest.fail(f"a line exactly as the store writes it was not recognised: {req!r}")
    # the entry point replay and fsck use: the full checks' answer, or their exact refusal
    if isinstance(full, Exception):
        with pytest.raises(records.LineError) as info:
            records.parse_request_line(req)
        assert str(info.value) == str(full)
    else:
        assert records.parse_request_line(req) == full
    full = _strict(records.parse_result_line, res)
    fast = records.canonical_results([res])
    if fast is not None:
        assert not isinstance(full, Exception), (res, full)
        rec, epoch = full
        assert fast == [(rec["request_id"], rec["result_id"], rec["status"], epoch)]


@given(st.lists(st.tuples(request_lines(ASCII), result_lines(ASCII)), min_size=1, max_size=5))
@settings(max_examples=50, deadline=None)
def test_ascii_lines_as_the_store_writes_them_are_all_recognised_in_one_go(pairs):
    """The fast forms are not dead code: every line the store writes (ASCII text,
    escapes included) goes through them, a whole run of lines at once."""
    reqs, ress = [p[0] for p in pairs], [p[1] for p in pairs]
    assert records.canonical_requests(reqs) == [records.parse_request_line_strict(x) for x in reqs]
    assert records.canonical_results(ress) == [
        (r["request_id"], r["result_id"], r["status"], e) for r, e in map(records.parse_result_line, ress)]
    # one line that is not in the form sends the whole run to the line-by-line checks
    assert records.canonical_results(ress + [json.dumps(json.loads(ress[0])).encode()]) is None
    assert records.canonical_requests([json.dumps(json.loads(reqs[0])).encode()] + reqs) is None


# -- start-up: the refusal of a line that is almost canonical is the full checks' refusal --

def _write(n=40):
    """n tickets (the store's own lines): each consumed, every other one completed."""
    rnd = random.Random(5)
    reqs, ress = [], []
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=9)))
    for i in range(n):
        rid = _uuid(rnd)
        t = t0 + timedelta(minutes=7 * i)
        reqs.append(records.encode(records.request_record(rid, t.isoformat(), REQUEST_TYPES[i % 4],
                                                          {"message_id": f"m{i}"}, None, f"k{i}" if i % 3 else None)))
        ress.append(records.encode(records.result_record(_uuid(rnd), rid, (t + timedelta(seconds=30)).isoformat(),
                                                         "IN_PROGRESS", "w", "ticket processing started", [])))
        if i % 2:
            ress.append(records.encode(records.result_record(_uuid(rnd), rid, (t + timedelta(seconds=90)).isoformat(),
                                                             "DONE", "w", 'done "ok"\n', ["a/b.json"])))
    return reqs, ress


def _root_with(root, reqs, ress):
    (root / REQUESTS).parent.mkdir(parents=True, exist_ok=True)
    (root / REQUESTS).write_bytes(b"".join(reqs))
    (root / RESULTS).write_bytes(b"".join(ress))
    return root


def _spelled_otherwise(line: bytes) -> bytes:
    return json.dumps(json.loads(line)).encode() + b"\n"  # spaces after ':' and ','


DAMAGE = {  # how the line differs from the canonical form -> what the refusal says
    "a repeated key": (lambda line: line[:-2] + b',"status":"OPEN"}\n', "duplicate key 'status' in a JSON object"),
    "keys in another order": (
        lambda line: json.dumps(dict(reversed(json.loads(line).items())), separators=(",", ":")).encode() + b"\n",
        "differ from"),
    "an id in capitals": (lambda line: line.replace(json.loads(line)["request_id"].encode(),
                                                    json.loads(line)["request_id"].upper().encode()),
                          "request_id is not a lowercase canonical UUID"),
    "a lone surrogate escape": (lambda line: line.replace(b'"m2"', b'"\\ud800"').replace(b'"w"', b'"\\udc00"'),
                                "not JSON"),
    "hour 24": (lambda line: line.replace(b"T09:", b"T24:"), "is not an ISO 8601 time with offset"),
    "the 30th of February": (lambda line: line.replace(b"2026-03-01T", b"2026-02-30T"),
                             "is not an ISO 8601 time with offset"),
}


@pytest.mark.parametrize("log", ["requests", "results"])
@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_line_that_differs_from_the_canonical_form_stops_start_up_with_the_full_reason(root, log, case):
    reqs, ress = _write()
    lines = reqs if log == "requests" else ress
    n = 3  # a middle line, in the same read chunk as canonical ones
    damage, says = DAMAGE[case]
    assert records.canonical_requests([x[:-1] for x in reqs]) and records.canonical_results([x[:-1] for x in ress])
    lines[n - 1] = damage(lines[n - 1])
    parse = records.parse_request_line_strict if log == "requests" else records.parse_result_line
    with pytest.raises(records.LineError) as expected:
        parse(lines[n - 1][:-1])
    assert says in str(expected.value)
    _root_with(root, reqs, ress)
    with pytest.raises(CorruptLog) as info:
        JsonlLedger(root, scrub=False).open()
    assert (info.value.path, info.value.line_no, info.value.reason) == (
        root / (REQUESTS if log == "requests" else RESULTS), n, str(expected.value))
    assert f"{REQUESTS if log == 'requests' else RESULTS}:{n}" in str(info.value).replace(str(root) + "/", "")


def _state(store):
    ids = [json.loads(x)["request_id"] for x in store.lines()[0]]
    return (store.counts(), store.anomalies(), store.line_counts(),
            [(t.row, t.request, t.results, t.result_lines) for t in map(store.ticket, ids)],
            store.page(("OPEN", "IN_PROGRESS", "DONE", "FAILED"), tuple(REQUEST_TYPES), 1000, None))


def test_lines_spelled_otherwise_give_the_same_state_and_the_same_anomalies(tmp_path):
    """The same records, once as the store writes them (taken in one go) and once
    spelled otherwise (taken line by line): same board, histories, anomalies."""
    reqs, ress = _write(60)
    # well-formed lines that are not valid steps: a repeated ticket, a result for an
    # unknown ticket, a second IN_PROGRESS (an illegal transition)
    reqs.insert(10, reqs[4])
    ress.insert(7, records.encode(records.result_record(str(uuid.uuid4()), str(uuid.uuid4()),
                                                        "2026-03-01T09:00:00+09:00", "DONE", "w", "", [])))
    ress.insert(20, ress[0])
    one = _root_with(tmp_path / "canonical", reqs, ress)
    other = _root_with(tmp_path / "otherwise", [_spelled_otherwise(x) for x in reqs],
                       [_spelled_otherwise(x) for x in ress])
    a, b = JsonlLedger(one, scrub=False).open(), JsonlLedger(other, scrub=False).open()
    try:
        sa, sb = _state(a), _state(b)
        assert len(sa[1]) == 3 and [x.line_no for x in sa[1]] == [11, 8, 21]
        assert sa == sb
    finally:
        a.close(checkpoint=False)
        b.close(checkpoint=False)
