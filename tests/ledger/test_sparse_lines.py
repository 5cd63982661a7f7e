"""The JSONL backend's sparse line index against a real file (lines of every
length, some longer than one read chunk)."""
import os
import random

from opsledger.server.ledger.jsonl.files import read_line
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
