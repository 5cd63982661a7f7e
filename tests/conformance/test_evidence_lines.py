"""The evidence queries every ledger backend answers (SPEC §7.1): result_line(n),
line_counts() and each ticket's result_lines, through LedgerBackend only."""
import orjson

from opsledger.server.ledger.backend import Submit, Transition
from opsledger.server.ledger.machine import Event
from tests.conformance.conftest import BACKENDS


def history(backend, n):
    ids = []
    for i in range(n):
        rid = backend.call(Submit("ACKNOWLEDGE", {"message_id": f"m{i}"}, None, None)).request["request_id"]
        backend.call(Transition(rid, Event.CONSUME, "w1", "started"))
        ids.append(rid)
    for rid in ids[::2]:  # interleaved: a ticket's two results are not adjacent lines
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


def test_result_lines_number_the_results_log(ledger):
    assert ledger.line_counts() == (0, 0) and ledger.result_line(1) is None
    check_lines(ledger, history(ledger, 45))  # 68 result lines


def test_result_lines_survive_a_restart(ledgers):
    ids = history(ledgers.open(), 40)
    check_lines(ledgers.reopen(), ids)


def test_a_second_writer_on_the_same_data_is_seen(ledgers):
    a = ledgers.open()
    b = BACKENDS[ledgers.kind](ledgers.place, ledgers.clock).open()
    try:
        ids = history(a, 3) + history(b, 3)
        check_lines(a, ids)
        check_lines(b, ids)
    finally:
        b.close()
