"""What systemd sees of the daemon: a notify socket the test binds (as systemd binds $NOTIFY_SOCKET), and
`streamseg run` as a real subprocess with its log in a file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


class NotifySocket:
    """A Unix datagram socket at `path`, or in the abstract namespace when `abstract` (`@name` in $NOTIFY_SOCKET).

    Every datagram is kept with its arrival time (monotonic) as a dict of its `KEY=value` lines."""

    def __init__(self, path: Path | None = None, *, abstract: str | None = None) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract is not None:
            self._sock.bind(b"\0" + abstract.encode())
            self.env = {"NOTIFY_SOCKET": f"@{abstract}"}
        else:
            assert path is not None
            self._sock.bind(str(path))
            self.env = {"NOTIFY_SOCKET": str(path)}
        self._sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self._sock.recv(65536)
            except (TimeoutError, OSError):
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def received(self, key: str, value: str | None = None, since: float = 0.0) -> list[tuple[float, dict]]:
        with self._lock:
            return [(t, m) for t, m in self.messages if t >= since and key in m and (value is None or m[key] == value)]

    def wait_for(self, key: str, value: str | None = None, *, since: float = 0.0, timeout: float = 60.0) -> dict:
        """The first message since `since` with `key` (= `value`); AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.received(key, value, since)
            if found:
                return found[0][1]
            time.sleep(0.05)
        raise AssertionError(f"no {key}={value or '...'} on the notify socket within {timeout} s: {self.messages}")

    def pings(self, since: float = 0.0) -> list[float]:
        return [t for t, _ in self.received("WATCHDOG", "1", since)]

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self._sock.close()


class DaemonProcess:
    """`python -m streamseg run CONFIG` with extra environment, its stderr (the log) in `log`."""

    def __init__(self, config: Path, log: Path, env: dict[str, str]) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamseg", "run", str(config)],
            env={**os.environ, **env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    @property
    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self, containing: str) -> list[str]:
        return [line for line in self.text.splitlines() if containing in line]

    def wait_log(self, containing: str, timeout: float = 60.0, count: int = 1) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.lines(containing)
            if len(found) >= count:
                return found
            assert self.proc.poll() is None, f"the daemon exited ({self.proc.returncode}):\n{self.text}"
            time.sleep(0.1)
        raise AssertionError(f"no log line with {containing!r} within {timeout} s:\n{self.text}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 90.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()


class InProcess:
    """A Daemon on a thread of this process (no signal handlers; `daemon.reload()` does what SIGHUP does)."""

    def __init__(self, config: Path) -> None:
        from streamseg.config import load_config
        from streamseg.daemon import Daemon

        self.daemon = Daemon(load_config(config), config)
        self.code: int | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.code = self.daemon.run(handle_signals=False)

    def reload(self, timeout: float = 60.0) -> None:
        """Reload and wait until it is done."""
        done = self.daemon.reloads
        self.daemon.reload()
        deadline = time.monotonic() + timeout
        while self.daemon.reloads == done:
            assert time.monotonic() < deadline, "the reload did not finish"
            time.sleep(0.05)

    def __enter__(self):  # noqa: ANN204 - the Daemon
        self._thread.start()
        assert self.daemon.started.wait(60), "the daemon did not start its cameras"
        return self

    def __exit__(self, *exc: object) -> None:
        self.daemon.stop()
        self._thread.join(90)
        assert not self._thread.is_alive(), "the daemon did not stop"
