"""Settings: every flag has an ``OPSLEDGER_*`` variable; flags win over env."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload


class SettingsError(ValueError):
    """A setting that cannot be served as given; the message says what to change."""


def check_addr(flag: str, value: str) -> tuple[str, int]:
    """HOST:PORT of a listen address (IPv6 in brackets); SettingsError naming the flag otherwise."""
    host, sep, port = str(value).rpartition(":")
    host = host.strip("[]")
    example = "e.g. 127.0.0.1:50051, [::1]:50051, 0.0.0.0:0 for any free port"
    if not sep or not host or not port.isdigit():
        raise SettingsError(f"{flag} {value!r}: expected HOST:PORT ({example})")
    if not 0 <= int(port) <= 65535:
        raise SettingsError(f"{flag} {value!r}: port must be 0-65535 ({example})")
    return host, int(port)


def check_zone() -> None:
    """The configured zone exists (every timestamp and file stamp uses it)."""
    from zoneinfo import ZoneInfoNotFoundError

    from opsledger.server.common.clock import configured_zone

    try:
        configured_zone()
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(
            f"OPSLEDGER_TZ={os.environ.get('OPSLEDGER_TZ')!r} is not a known time zone ({exc}): "
            "set an IANA name such as Asia/Seoul or UTC, or unset it for Asia/Seoul"
        ) from None


def check_root(root: Path, init: bool = False) -> None:
    """The data root exists (``init``: create it); a mistyped --root must not start an empty ledger."""
    root = Path(root)
    if root.is_dir():
        return
    if root.exists():
        raise SettingsError(f"--root {root}: not a folder: point --root (OPSLEDGER_ROOT) at the data root")
    if not init:
        raise SettingsError(f"--root {root}: no such folder: check the path, or pass --init to create it "
                            "and start with empty logs")
    root.mkdir(parents=True)


def _path(name: str) -> Path | None:
    value = env(name)
    return Path(value) if value else None


# A bearer token is at least this long (after stripping surrounding
# whitespace): a blank or guessable-short one would pass the non-loopback
# guard while protecting nothing.
MIN_TOKEN_CHARS = 16
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: it travels in a header


def clean_token(value: str | None, source: str) -> str | None:
    """The token from ``source`` stripped, or SettingsError naming what is wrong with it."""
    if value is None:
        return None
    token = value.strip()
    if not token:
        raise SettingsError(f"{source}: the token is blank")
    if len(token) < MIN_TOKEN_CHARS:
        raise SettingsError(f"{source}: the token must be at least {MIN_TOKEN_CHARS} characters")
    if not _TOKEN_CHARS.fullmatch(token):
        raise SettingsError(f"{source}: the token must be printable ASCII without spaces")
    return token


def read_token(token_file: Path | None) -> str | None:
    """The bearer token: ``--token-file`` wins over ``OPSLEDGER_TOKEN``."""
    if token_file is not None:
        try:
            text = Path(token_file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{token_file}: cannot read the token file ({exc})") from None
        return clean_token(text, str(token_file))
    return clean_token(os.environ.get("OPSLEDGER_TOKEN") or None, "OPSLEDGER_TOKEN")


@overload
def env(name: str) -> str | None: ...
@overload
def env(name: str, default: str) -> str: ...
def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"OPSLEDGER_{name}")
    return value if value not in (None, "") else default


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Settings:
    root: Path = field(default_factory=lambda: Path(env("ROOT", ".")))
    # The ledger backend: "jsonl" (the logs under root) or a URL naming another one.
    store: str = field(default_factory=lambda: env("STORE", "jsonl"))
    grpc_addr: str = field(default_factory=lambda: env("GRPC_ADDR", "127.0.0.1:50051"))
    http_addr: str | None = field(default_factory=lambda: env("HTTP_ADDR", "127.0.0.1:8080"))
    grpc_target: str | None = field(default_factory=lambda: env("GRPC_TARGET"))
    fsync: str = field(default_factory=lambda: env("FSYNC", "always"))
    token: str | None = field(default_factory=lambda: env("TOKEN"))
    insecure_no_auth: bool = field(default_factory=lambda: env_bool("INSECURE_NO_AUTH"))
    # The token also guards reads (board, tickets, cycles, /metrics, reflection); health stays open.
    protect_reads: bool = field(default_factory=lambda: env_bool("PROTECT_READS"))
    tls_cert: Path | None = field(default_factory=lambda: _path("TLS_CERT"))
    tls_key: Path | None = field(default_factory=lambda: _path("TLS_KEY"))
    tls_client_ca: Path | None = field(default_factory=lambda: _path("TLS_CLIENT_CA"))
    max_concurrent_rpcs: int = field(default_factory=lambda: int(env("MAX_CONCURRENT_RPCS", "256")))
    # ConsumeNext long-polls (wait_seconds > 0) have their own budget: a waiting call costs a future.
    max_long_polls: int = field(default_factory=lambda: int(env("MAX_LONG_POLLS", "4096")))
    # Connection caps (lowered at start to fit RLIMIT_NOFILE minus a reserve for files).
    http_max_connections: int = field(default_factory=lambda: int(env("HTTP_MAX_CONNECTIONS", "1024")))
    grpc_max_connections: int = field(default_factory=lambda: int(env("GRPC_MAX_CONNECTIONS", "1024")))
    # Seconds a client has to send a whole HTTP request once it starts (or connects).
    http_request_timeout: float = field(default_factory=lambda: float(env("HTTP_REQUEST_TIMEOUT", "10")))
    grace: float = field(default_factory=lambda: float(env("GRACE", "10")))
    reap_interval: float = field(default_factory=lambda: float(env("REAP_INTERVAL", "0")))
    # The JSONL ledger's index checkpoint: written at a clean stop and every
    # this many seconds when the logs grew (0: only at stop).
    checkpoint_interval: float = field(default_factory=lambda: float(env("CHECKPOINT_INTERVAL", "300")))
    # Start although a log holds less than the last checkpoint covered (lost lines).
    accept_log_loss: bool = field(default_factory=lambda: env_bool("ACCEPT_LOG_LOSS"))
    ready_file: Path | None = None
    bundle_key_file: Path | None = field(default_factory=lambda: _path("BUNDLE_KEY_FILE"))
    bundle_max_age_s: int = field(default_factory=lambda: int(env("BUNDLE_MAX_AGE_S", "86400")))
