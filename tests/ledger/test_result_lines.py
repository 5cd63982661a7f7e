"""The evidence queries every ledger backend answers: result_line(n),
line_counts() and each ticket's result_lines, stated through LedgerBackend
only (a new backend adds itself to BACKENDS)."""
import orjson
import pytest

from server.ledger.backend import Submit, Transition
from server.ledger.backends import make_backend
from server.ledger.machine import Event
from server.ledger.records import RESULTS_REF

BACKENDS = ["jsonl"]


@pytest.fixture(params=BACKENDS)
def open_backend(request, tmp_path):
    opened = []

    def make():
        backend = make_backend(request.param, tmp_path).open()
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


def history(backend, n):
    ids = []
    for i in range(n):
        rid = backend.call(Submit("ACKNOWLEDGE", {"message_id": f"m{i}"}, None, None)).request["request_id"]
        backend.call(Transition(rid, Event.CONSUME, "w1", "started"))
        ids.append(rid)
    for rid in ids[::2]:  # interleave: a ticket's two results are not adjacent lines
        backend.call(Transition(rid, Event.COMPLETE_DONE, "w1", "ok"))
    return ids


def check_lines(backend, ids):
    _requests, results = backend.lines()
    assert backend.line_counts() == (len(ids), len(results))
    for n, line in enumerate(results, start=1):
        assert backend.result_line(n) == line
    for n in (0, -1, len(results) + 1, 10**9):
        assert backend.result_line(n) is None
    seen = []
    for rid in ids:
        view = backend.ticket(rid)
        assert len(view.result_lines) == len(view.results)
        for result, n in zip(view.results, view.result_lines):
            assert orjson.loads(backend.result_line(n)) == result
        seen += view.result_lines
    assert sorted(seen) == list(range(1, len(results) + 1))


def test_result_lines_number_the_results_log(open_backend):
    backend = open_backend()
    assert backend.line_counts() == (0, 0) and backend.result_line(1) is None
    ids = history(backend, 45)  # 113 result lines: several strides of the line index
    check_lines(backend, ids)


def test_result_lines_survive_a_restart(open_backend):
    first = open_backend()
    ids = history(first, 40)
    first.close()
    check_lines(open_backend(), ids)


def test_a_second_writer_on_the_same_data_is_seen(open_backend):
    a, b = open_backend(), open_backend()
    ids = history(a, 3) + history(b, 3)
    check_lines(a, ids)
    check_lines(b, ids)


def test_a_skipped_line_still_counts_as_a_line(tmp_path):
    """JSONL: a hand-written result for an unknown ticket is skipped at start-up
    but keeps its place, so line N is still the file's Nth line."""
    backend = make_backend("jsonl", tmp_path).open()
    ids = history(backend, 2)
    backend.close()
    path = tmp_path / RESULTS_REF
    stray = orjson.loads(path.read_bytes().splitlines()[0])
    stray["request_id"] = "00000000-0000-4000-8000-000000000000"
    path.write_bytes(orjson.dumps(stray) + b"\n" + path.read_bytes())
    reopened = make_backend("jsonl", tmp_path).open()
    try:
        assert reopened.anomalies() and reopened.result_line(1) == orjson.dumps(stray)
        for rid in ids:
            view = reopened.ticket(rid)
            assert all(n >= 2 for n in view.result_lines)
            for result, n in zip(view.results, view.result_lines):
                assert orjson.loads(reopened.result_line(n)) == result
    finally:
        reopened.close()
