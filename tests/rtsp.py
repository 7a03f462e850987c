"""A real RTSP server (GStreamer's, tests/rtsp_server.py run by the system python) on a free loopback port.

Use it from a test module:  ``from tests.rtsp import rtsp_server  # noqa: F401``
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SHARED
from tests.mqtt_broker import free_port

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("rtsp_server.py")


def gst_rtsp_available() -> bool:
    if not Path(SYSTEM_PYTHON).is_file():
        return False
    check = 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer'
    return subprocess.run([SYSTEM_PYTHON, "-c", check], capture_output=True).returncode == 0


class RtspServer:
    """`stop()` and `start()` again on the same port simulate a camera that reboots; `pause()` one that hangs."""

    host = "127.0.0.1"

    def __init__(self, media: Path | None = None, port: int | None = None, record: Path | None = None) -> None:
        self.port = port or free_port()
        self.media = media
        self.record = record  # a folder: /push and /push2 accept publishers (RECORD), saved there as .ts
        self._proc: subprocess.Popen | None = None
        # GStreamer's warnings go to a file, so a full pipe never blocks the server
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server object

    def url(self, path: str = "test", userinfo: str = "") -> str:
        return f"rtsp://{userinfo + '@' if userinfo else ''}{self.host}:{self.port}/{path}"

    def start(self, timeout: float = 20.0) -> None:
        if self._proc is not None:
            return
        cmd = [SYSTEM_PYTHON, str(SCRIPT), str(self.port)] + (["--media", str(self.media)] if self.media else [])
        cmd += ["--record", str(self.record)] if self.record else []
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != "READY":
            self._proc.kill()
            self._proc.wait(5)
            self._proc = None
            self._stderr.seek(0)
            raise RuntimeError(f"the RTSP server did not start: {self._stderr.read().decode(errors='replace')}")
        deadline = time.monotonic() + timeout
        while True:  # READY comes after attach(); be sure the port accepts before handing it out
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is None:
            return
        self.resume()
        self._proc.kill()  # a camera that loses power: no RTSP TEARDOWN, the connection just dies
        self._proc.wait(10)
        self._proc = None

    def pause(self) -> None:
        """Freeze the server: connections stay open and nothing more arrives (a hung camera)."""
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGCONT)

    def recordings(self, mount: str = "push") -> list[Path]:
        """The streams published to `mount` so far, one MPEG-TS file per publish, oldest first."""
        assert self.record is not None
        return sorted(self.record.glob(f"{mount}-*.ts"), key=lambda p: p.stat().st_mtime)


def skip_without_gst_rtsp() -> None:
    if not gst_rtsp_available():
        pytest.skip(
            "GStreamer's RTSP server is not installed for /usr/bin/python3 "
            "(apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-{base,good,bad,ugly} "
            "gstreamer1.0-libav, or run tools/system-deps.sh)"
        )


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    """A fresh server for one test: /test (live 320x240 25 fps), /hd (640x480), /bikes (bikes.mp4, once)."""
    skip_without_gst_rtsp()
    media = SHARED / "media" / "bikes.mp4"
    server = RtspServer(media if media.is_file() else None)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rtsp_record_server(tmp_path: Path) -> Iterator[RtspServer]:
    """A fresh server that accepts publishers at /push and /push2 (as MediaMTX does); see RtspServer.recordings."""
    skip_without_gst_rtsp()
    folder = tmp_path / "recorded"
    folder.mkdir()
    server = RtspServer(record=folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
