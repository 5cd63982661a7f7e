"""A server's descriptors from outside: count them, fill its accept queue with idle sockets,
and stop it checking that it left cleanly."""
from __future__ import annotations

import os
import socket

IDLE_SOCKETS = 1100  # more than the 1,024 descriptors the tests give the server


def server_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def soft_nofile(pid: int) -> int:
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no Max open files line")


def open_idle(port: int, n: int = IDLE_SOCKETS, host: str = "127.0.0.1") -> list[socket.socket]:
    """``n`` connections that never send a byte."""
    idle = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((host, port))
        idle.append(s)
    return idle


def close_and_stop(idle: list[socket.socket], srv) -> str:
    """Close the idle sockets, stop the server; it must exit 0 with no traceback. Its log."""
    for s in idle:
        s.close()
    code = srv.terminate()
    log = srv.log()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log
    return log
