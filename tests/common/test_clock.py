from datetime import datetime, timedelta, timezone

import pytest

from opsledger.server.common.clock import epoch_seconds, iso, parse_iso


def test_contract_timestamps_round_trip():
    moment = datetime(2026, 1, 3, 14, 50, tzinfo=timezone(timedelta(hours=9)))
    assert iso(moment) == "2026-01-03T14:50:00+09:00"
    assert parse_iso("2026-01-03T14:50:00+09:00") == moment
    assert epoch_seconds("2026-01-03T14:50:00+09:00") == epoch_seconds("2026-01-03T05:50:00+00:00") == 1767419400


@pytest.mark.parametrize("read", [parse_iso, epoch_seconds])
def test_a_timestamp_without_offset_is_refused_by_every_reader(read):
    with pytest.raises(ValueError, match="without offset"):
        read("2026-01-03T14:50:00")
    with pytest.raises(ValueError):
        read("yesterday")
