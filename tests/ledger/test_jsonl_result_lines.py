"""JSONL: a skipped (hand-written) result line keeps its place in the
results log's numbering (the backend-agnostic promises are in
tests/conformance/test_evidence_lines.py)."""
import orjson

from opsledger.server.ledger.backends import make_backend
from opsledger.server.ledger.records import RESULTS_REF
from tests.conformance.test_evidence_lines import history


def test_a_skipped_line_still_counts_as_a_line(tmp_path):
    """JSONL: a hand-written result for an unknown ticket is skipped at start-up
    but keeps its place, so line N is still the file's Nth line."""
    backend = make_backend("jsonl", tmp_path).open()
    ids = history(backend, 2)
    backend.close()
    # Without the index checkpoint the clean stop wrote: a line put before lines it
    # covered is a rewritten log, which stops start-up (tests/ledger/test_checkpoint.py).
    (tmp_path / "state/tickets/index.checkpoint").unlink()
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
