"""The JSONL backend's sparse line index against a real file (lines of every
length, some longer than one read chunk)."""
import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from opsledger.server.ledger.jsonl.files import read_line, read_lines
from opsledger.server.ledger.jsonl.lines import STRIDE, SparseLines, count_lines, skip_lines


def test_every_line_and_every_offset_maps_both_ways(tmp_path):
    rnd = random.Random(3)
    lines = [b"x" * rnd.choice([0, 1, 50, 700, 70_000]) + str(i).encode() for i in range(3 * STRIDE + 5)]
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    index, offsets, at = SparseLines(), [], 0
    for line in lines:
        index.add(at)
        offsets.append(at)
        at += len(line) + 1
    fd = os.open(path, os.O_RDONLY)
    try:
        for n, (line, offset) in enumerate(zip(lines, offsets), start=1):
            assert read_line(fd, skip_lines(fd, *index.locate(n))) == line
            first, mark = index.mark_before(offset)
            assert first + count_lines(fd, mark, offset) == n
        assert index.locate(0) is None and index.locate(len(lines) + 1) is None
        assert index.count == len(lines)
    finally:
        os.close(fd)


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.sampled_from([0, 1, 300, 1023, 1024, 1025, 5000, 70_000]), min_size=1, max_size=40),
       picks=st.lists(st.integers(min_value=0, max_value=39), max_size=60), torn=st.booleans())
def test_reading_many_lines_together_gives_each_line_as_reading_it_alone(tmp_path_factory, lengths, picks, torn):
    """A board page reads its rows' lines in runs (one pread for lines close together):
    every line comes back whole and alone, whatever its length or place, a torn last
    line (no newline) included, and asking for one twice is fine."""
    lines = [bytes([97 + i % 26]) * n + str(i).encode() for i, n in enumerate(lengths)]
    data = b"".join(line + b"\n" for line in lines)
    if torn:
        data = data[:-1]
    path = tmp_path_factory.mktemp("lines") / "log.jsonl"
    path.write_bytes(data)
    offsets, at = [], 0
    for line in lines:
        offsets.append(at)
        at += len(line) + 1
    wanted = [offsets[p % len(offsets)] for p in picks]
    fd = os.open(path, os.O_RDONLY)
    try:
        got = read_lines(fd, wanted)
        assert set(got) == set(wanted)
        for offset in wanted:
            assert got[offset] == read_line(fd, offset) == lines[offsets.index(offset)]
    finally:
        os.close(fd)


def test_adding_runs_of_lines_at_once_marks_what_adding_them_one_by_one_marks():
    rnd = random.Random(11)
    for _ in range(50):
        offsets = sorted(rnd.sample(range(10**6), rnd.randrange(1, 5 * STRIDE)))
        one, runs = SparseLines(), SparseLines()
        for offset in offsets:
            one.add(offset)
        i = 0
        while i < len(offsets):  # runs of random length, starting anywhere between marks
            n = rnd.randrange(0, 2 * STRIDE)
            runs.add_all(offsets[i:i + n])
            i += n
        assert (runs.export(), runs.count) == (one.export(), one.count)
