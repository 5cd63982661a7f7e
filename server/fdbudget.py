"""File descriptors: raise the soft limit, and split it so the store always has some.

Every accepted connection costs a descriptor. Without a cap, idle sockets
can take them all and the store or the cycle then fails to open a file
(a cycle without a receipt). So at start the soft RLIMIT_NOFILE is raised
to the hard limit (as Go's runtime does), ``FD_RESERVE`` descriptors are set
aside for files, and the HTTP and gRPC connection caps are lowered, evenly,
until they fit in what is left.
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass

# Kept free for the store's logs, the cycle's reports and snapshots,
# temporary files, the log stream and the runtime's own threads/pipes.
FD_RESERVE = 128
# Extra HTTP connections beyond the cap that may only ask for /healthz.
HEALTH_EXTRA = 16
MIN_CONNECTIONS = 8


def raise_nofile_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit; returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # keep the soft limit we have; the caps below adapt to it
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


@dataclass(frozen=True)
class ConnectionCaps:
    http: int
    grpc: int
    soft_limit: int
    scaled: bool  # True when the configured caps did not fit and were lowered


def connection_caps(http_wanted: int, grpc_wanted: int, soft_limit: int | None = None,
                    in_use: int | None = None) -> ConnectionCaps:
    """HTTP and gRPC caps that leave FD_RESERVE descriptors free under ``soft_limit``."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0] if soft_limit is None else soft_limit
    used = open_descriptors() if in_use is None else in_use
    room = soft - used - FD_RESERVE - HEALTH_EXTRA
    if http_wanted + grpc_wanted <= room:
        return ConnectionCaps(http_wanted, grpc_wanted, soft, False)
    each = max(MIN_CONNECTIONS, room // 2)
    return ConnectionCaps(min(http_wanted, each), min(grpc_wanted, each), soft, True)
