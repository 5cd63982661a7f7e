import os

import pytest

from opsledger.server.common.rawpath import RawPathError, check_syntax, resolve, split_line_suffix

GOOD = ["a", "reports/live/cycle/latest/live_cycle_latest.json", "state/tickets/ticket_results.jsonl:line12",
        "a-b_c.d/e", "x" * 512]
BAD = ["", "x" * 513, "/etc/passwd", "../x", "a/../b", "a/./b", "a//b", "a/", "a\\b", "file:x", "json:x",
       "http://h/x", "https://h/x", "x://y", "%2e%2e/x", "a b", "a\tb", "a\nb", "a\x00b", "a:line1",
       "x.jsonl:line0", "x.json:line1", "ünï/x", "a/*"]


@pytest.mark.parametrize("ref", GOOD)
def test_good_refs(ref, tmp_path):
    check_syntax(ref)
    assert str(resolve(tmp_path, ref)).startswith(str(tmp_path.resolve()))


@pytest.mark.parametrize("ref", BAD)
def test_bad_refs(ref):
    with pytest.raises(RawPathError):
        check_syntax(ref)


def test_line_suffix():
    assert split_line_suffix("a/b.jsonl:line3") == ("a/b.jsonl", 3)
    assert split_line_suffix("a/b.json") == ("a/b.json", None)


def test_symlink_escaping_the_root_is_refused(tmp_path):
    root = tmp_path / "root"
    (root / "reports").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text("{}")
    os.symlink(outside, root / "reports" / "link")
    with pytest.raises(RawPathError, match="outside the data root"):
        resolve(root, "reports/link/secret.json")



def _layout(tmp_path):
    root = tmp_path / "root"
    (root / "reports" / "r").mkdir(parents=True)
    (root / "reports" / "r" / "a.json").write_text('{"in": true}')
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.json").write_text('{"secret": true}')
    return root, outside


def test_read_inside_reads_a_file_and_says_none_for_nothing(tmp_path):
    from opsledger.server.common.rawpath import read_inside

    root, _outside = _layout(tmp_path)
    assert read_inside(root, "reports/r/a.json") == b'{"in": true}'
    assert read_inside(root, "reports/r/missing.json") is None
    assert read_inside(root, "reports/r") is None  # a folder is no stored file


def test_read_inside_never_blocks_on_a_fifo(tmp_path):
    """Opening a FIFO for reading would wait for a writer forever."""
    from opsledger.server.common.rawpath import read_inside

    root, _outside = _layout(tmp_path)
    os.mkfifo(root / "reports" / "r" / "pipe.json")
    assert read_inside(root, "reports/r/pipe.json") is None


@pytest.mark.parametrize("swapped", ["folder", "file"])
def test_a_symlink_swapped_in_after_the_check_is_refused_at_the_read(tmp_path, monkeypatch, swapped):
    """The swap happens between resolve() and the open: resolve is made to
    answer what it saw before (the unswapped path), the disk has the symlink."""
    from opsledger.server.common import rawpath

    root, outside = _layout(tmp_path)
    seen_before = root.resolve() / "reports" / "r" / "a.json"
    if swapped == "folder":
        (root / "reports" / "r" / "a.json").unlink()
        (root / "reports" / "r").rmdir()
        os.symlink(outside, root / "reports" / "r")
    else:
        (root / "reports" / "r" / "a.json").unlink()
        os.symlink(outside / "a.json", root / "reports" / "r" / "a.json")
    monkeypatch.setattr(rawpath, "resolve", lambda _root, _ref: seen_before)
    with pytest.raises(RawPathError, match="outside the data root"):
        rawpath.read_inside(root, "reports/r/a.json")
