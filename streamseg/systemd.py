"""systemd's sd_notify protocol (sd_notify(3), sd_watchdog_enabled(3)), without a dependency: one datagram of
newline-separated `KEY=value` lines to the Unix socket in $NOTIFY_SOCKET (a leading `@` is the abstract
namespace). Outside systemd (no $NOTIFY_SOCKET) every call does nothing.

The unit (systemd/streamseg.service) is `Type=notify` with `WatchdogSec=`: the daemon sends READY=1 once its
cameras are started, RELOADING=1 ... READY=1 around a SIGHUP reload (with MONOTONIC_USEC, which
`Type=notify-reload`, systemd 253+, requires), STATUS= with a one-line summary, STOPPING=1 on shutdown, and
WATCHDOG=1 every half watchdog interval while no camera is hung (streamseg.health).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """`ready()`, `reloading()`, `stopping()`, `status(text)`, `watchdog()`: messages to the service manager."""

    def __init__(self, socket_path: str | None, watchdog_usec: int | None = None) -> None:
        self.address: str | bytes | None = None
        if socket_path:
            # "@name" is an abstract socket: its address starts with a NUL byte instead of the "@".
            self.address = b"\0" + socket_path[1:].encode() if socket_path.startswith("@") else socket_path
        self.watchdog_interval = watchdog_usec / 1e6 if watchdog_usec else None  # seconds; None: no watchdog
        self._socket: socket.socket | None = None
        self._status: str | None = None
        self._last_ping = 0.0
        self._failed = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        """The notifier systemd asks for: $NOTIFY_SOCKET, and $WATCHDOG_USEC when $WATCHDOG_PID is unset or ours."""
        usec = None
        pid = environ.get("WATCHDOG_PID")
        if environ.get("WATCHDOG_USEC") and (not pid or pid == str(os.getpid())):
            try:
                usec = int(environ["WATCHDOG_USEC"])
            except ValueError:
                log.warning(
                    "systemd: WATCHDOG_USEC=%r is not a number of microseconds; no watchdog", environ["WATCHDOG_USEC"]
                )
        return cls(environ.get("NOTIFY_SOCKET"), usec if usec and usec > 0 else None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """One datagram with these `KEY=value` lines; False when it could not be sent (logged once)."""
        if self.address is None:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            if not self._failed:  # a manager that went away: say it once, keep running
                self._failed = True
                log.warning("systemd: cannot notify %s: %s", os.environ.get("NOTIFY_SOCKET"), exc)
            return False
        self._failed = False
        return True

    def ready(self, status: str | None = None) -> None:
        self._status = status
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> None:
        # MONOTONIC_USEC: CLOCK_MONOTONIC in microseconds, which Type=notify-reload matches against its SIGHUP
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def status(self, text: str) -> None:
        """STATUS=text, only when it changed (it is checked twice a second)."""
        if text != self._status:
            self._status = text
            self.send(f"STATUS={text}")

    def watchdog(self, now: float | None = None) -> bool:
        """WATCHDOG=1 when half the watchdog interval has passed since the last one; True when sent."""
        if self.watchdog_interval is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_ping < self.watchdog_interval / 2:
            return False
        self._last_ping = now
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
