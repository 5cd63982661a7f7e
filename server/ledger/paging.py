"""Opaque board page tokens: the cursor plus a fingerprint of the filter.

A token only works with the filter it was made for; anything else is an
INVALID_ARGUMENT on ``page_token``.
"""
from __future__ import annotations

import base64
import hashlib

from opsledger.client.limits import MAX_MESSAGE_BYTES
from opsledger.server.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 5000
# Room left in a page for its own fields (status, schema, asof, counts, token).
PAGE_ENVELOPE_BYTES = 4096


def _fingerprint(statuses: tuple[str, ...], types: tuple[str, ...]) -> str:
    text = ",".join(sorted(statuses)) + "|" + ",".join(sorted(types))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def make_token(cursor: int, statuses: tuple[str, ...], types: tuple[str, ...]) -> str:
    raw = f"v1.{cursor}.{_fingerprint(statuses, types)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_token(token: str, statuses: tuple[str, ...], types: tuple[str, ...]) -> int | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        version, cursor, fingerprint = raw.split(".")
        if version != "v1":
            raise ValueError
        value = int(cursor)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument.one("page_token", "is not a token this server issued") from None
    if fingerprint != _fingerprint(statuses, types):
        raise InvalidArgument.one("page_token", "was issued for a different status/request_type filter")
    return value


def page_size(requested: int) -> int:
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise InvalidArgument.one("page_size", f"must be 0-{MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")
    return requested or DEFAULT_PAGE_SIZE


def _varint_len(n: int) -> int:
    length = 1
    while n >= 0x80:
        n >>= 7
        length += 1
    return length


ROWS_LIMIT = MAX_MESSAGE_BYTES - PAGE_ENVELOPE_BYTES  # encoded bytes a page's rows may take


def whole_page_fits(reply_size: int) -> bool:
    """True when a reply of ``reply_size`` encoded bytes holds all its rows (the rows'
    own sizes then need no adding up: they are part of it)."""
    return reply_size <= ROWS_LIMIT


def rows_that_fit(row_sizes: list[int], limit: int = ROWS_LIMIT) -> int:
    """How many leading rows (their encoded sizes) fit in one message; at least one."""
    used = 0
    for i, size in enumerate(row_sizes):
        used += 1 + _varint_len(size) + size  # tag, length, row
        if used > limit:
            return max(i, 1)
    return len(row_sizes)
