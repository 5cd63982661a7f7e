import pytest

from opsledger.server.errors import InvalidArgument
from opsledger.server.ledger import validation as v


def fields(exc: InvalidArgument) -> set[str]:
    return {x.field for x in exc.violations}


GOOD = [
    ("REQUEST_RECONCILE", {"mode": "FULL", "reason": "r"}),
    ("REQUEST_RECONCILE", {"mode": "INCREMENTAL", "reason": "r", "lookback_days": 7.0}),
    ("REQUEST_REPORTS", {"mode": "RE-EVALUATE", "scope": "PHASE_C_LATEST", "reason": "r"}),
    ("REQUEST_REPORTS", {"mode": "REGEN", "scope": "PHASE_C_LATEST", "reason": "r"}),
    ("ACKNOWLEDGE", {"message_id": "m-1"}),
    ("REQUEST_LIVE_CYCLE", {"reason": "데모"}),
]


@pytest.mark.parametrize("rtype,payload", GOOD)
def test_valid_payloads_pass(rtype, payload):
    clean = v.check_submit("", rtype, payload, None, None)
    assert clean.keys() == payload.keys()


def test_integral_doubles_come_back_as_ints():
    clean = v.check_submit("TICKET_SUBMIT_V1", "REQUEST_RECONCILE",
                           {"mode": "INCREMENTAL", "reason": "r", "lookback_days": 7.0}, None, None)
    assert clean["lookback_days"] == 7 and type(clean["lookback_days"]) is int


BAD = [
    ("NOPE", {"reason": "r"}, "request_type"),
    ("REQUEST_RECONCILE", {"reason": "r"}, "payload.mode"),
    ("REQUEST_RECONCILE", {"mode": "FULL", "reason": "r", "extra": 1}, "payload.extra"),
    ("REQUEST_RECONCILE", {"mode": "PARTIAL", "reason": "r"}, "payload.mode"),
    ("REQUEST_RECONCILE", {"mode": "FULL", "reason": "r", "lookback_days": 7}, "payload.lookback_days"),
    ("REQUEST_RECONCILE", {"mode": "INCREMENTAL", "reason": "r", "lookback_days": 0}, "payload.lookback_days"),
    ("REQUEST_RECONCILE", {"mode": "INCREMENTAL", "reason": "r", "lookback_days": 366}, "payload.lookback_days"),
    ("REQUEST_RECONCILE", {"mode": "INCREMENTAL", "reason": "r", "lookback_days": 7.5}, "payload.lookback_days"),
    ("REQUEST_RECONCILE", {"mode": "INCREMENTAL", "reason": "r", "lookback_days": True}, "payload.lookback_days"),
    ("REQUEST_RECONCILE", {"mode": "FULL", "reason": "x" * 201}, "payload.reason"),
    ("REQUEST_REPORTS", {"mode": "REGEN", "scope": "OTHER", "reason": "r"}, "payload.scope"),
    ("ACKNOWLEDGE", {}, "payload.message_id"),
    ("ACKNOWLEDGE", {"message_id": 5}, "payload.message_id"),
    ("REQUEST_LIVE_CYCLE", {"reason": ""}, "payload.reason"),
]


@pytest.mark.parametrize("rtype,payload,field", BAD)
def test_invalid_payloads_name_the_field(rtype, payload, field):
    with pytest.raises(InvalidArgument) as info:
        v.check_submit("", rtype, payload, None, None)
    assert field in fields(info.value)


def test_schema_trace_and_key_rules():
    with pytest.raises(InvalidArgument) as info:
        v.check_submit("OTHER", "ACKNOWLEDGE", {"message_id": "m"}, "t" * 129, "")
    assert fields(info.value) == {"schema", "trace_id", "idempotency_key"}


@pytest.mark.parametrize("pid", ["", "worker-1", "a.b:c@d_e", "x" * 128])
def test_processor_ids_accepted(pid):
    _, processor, _ = v.check_consume("6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e", pid, None)
    assert processor == (pid or "manual")


@pytest.mark.parametrize("pid", ["has space", "x" * 129, "semi;colon", "ünï"])
def test_processor_ids_refused(pid):
    with pytest.raises(InvalidArgument) as info:
        v.check_consume("6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e", pid, None)
    assert fields(info.value) == {"processor_id"}


def test_request_id_must_be_uuid_and_is_canonicalised():
    with pytest.raises(InvalidArgument) as info:
        v.check_consume("latest", "", None)
    assert fields(info.value) == {"request_id"}
    rid, _, msg = v.check_consume("6F1C1F8E-6B51-4F8E-9A59-3B7F0A4C1D2E", "", None)
    assert rid == "6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e" and msg == "ticket processing started"


def test_complete_rules():
    def ok(_ref):
        return None

    def bad(ref):
        raise ValueError("nope")

    with pytest.raises(InvalidArgument) as info:
        v.check_complete("6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e", "OPEN", "", "m" * 2001, ["a"] * 65, ok)
    assert fields(info.value) == {"status", "message", "artifacts"}
    with pytest.raises(InvalidArgument) as info:
        v.check_complete("6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e", "DONE", "", "", ["a", "b"], bad)
    assert fields(info.value) == {"artifacts[0]", "artifacts[1]"}
