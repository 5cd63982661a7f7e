from opsledger.server.common.atomic import atomic_replace, create_new


def test_atomic_replace_leaves_no_temp(tmp_path):
    target = tmp_path / "d" / "latest.json"
    atomic_replace(target, b"one")
    atomic_replace(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["latest.json"]


def test_create_new_never_overwrites(tmp_path):
    a = create_new(tmp_path, "snap_20260101_000000", ".json", b"1")
    b = create_new(tmp_path, "snap_20260101_000000", ".json", b"2")
    c = create_new(tmp_path, "snap_20260101_000000", ".json", b"3")
    assert [a.name, b.name, c.name] == ["snap_20260101_000000.json", "snap_20260101_000000_2.json",
                                        "snap_20260101_000000_3.json"]
    assert a.read_bytes() == b"1" and c.read_bytes() == b"3"
