import os

import pytest

from server.common.rawpath import RawPathError, check_syntax, resolve, split_line_suffix

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

