"""An offline guard: any connection to a non-loopback address raises `OfflineError`.

The course promises to run with no network. The test suite proves it by
installing this guard in every notebook kernel (through `tests/offline_site/
sitecustomize.py`); each blocked attempt is also appended to the file named by
`COURSE_OFFLINE_LOG`, so a notebook that swallows the exception still fails.
"""

from __future__ import annotations

import ipaddress
import os
import socket

_installed = False


class OfflineError(RuntimeError):
    """Raised when code tries to reach the network while the course runs offline.

    Not an OSError on purpose: urllib and requests would wrap an OSError into their own
    "URLError"/"ConnectionError" and hide that the guard stopped it."""


def _is_local(host) -> bool:
    if host is None or host in ("localhost", "", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost: resolving it already needs the network


def _block(what: str, host) -> None:
    log = os.environ.get("COURSE_OFFLINE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{what} {host!r}\n")
    raise OfflineError(
        f"offline guard: {what} to {host!r} blocked. The course must run without network; "
        "load data from data/ and models from installed packages instead."
    )


def install_guard() -> None:
    """Patch socket connect/getaddrinfo so only loopback addresses and Unix sockets work. Idempotent."""
    global _installed
    if _installed:
        return
    real_connect, real_connect_ex, real_getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def _check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            _block("connection", address[0])

    def connect(self, address):
        _check(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        _check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_local(host if not isinstance(host, bytes) else host.decode()):
            _block("name lookup", host)
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    _installed = True


def guard_installed() -> bool:
    return _installed
