"""`streamseg run` under systemd's notify protocol, as a real subprocess on the real model: READY=1 once the
cameras are started, STATUS=, WATCHDOG=1 every half interval, and no more pings while a camera is hung.

The hang is a real one: the camera's JSON-lines output is a named pipe that nobody reads (a consumer process
that hung), so once the pipe's 64 KiB buffer is full the output's write() blocks in the kernel, as it would on
a stuck network mount. Reading the pipe again unblocks it, and the pings come back.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

from tests.service import DaemonProcess, NotifySocket

WATCHDOG_S = 2.0  # WATCHDOG_USEC the test sets, as systemd would from WatchdogSec=2


def write_config(tmp_path: Path, model: Path, video: Path, outputs: str = "") -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(
        f"""
hang_timeout: 2
defaults:
  model: {{path: {model}}}
cameras:
  street:
    source: {{url: {video}, loop: true}}
{outputs}
"""
    )
    return path


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_ready_status_and_watchdog_pings(tmp_path: Path, fast_seg_model: Path, bikes_mp4: Path) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    config = write_config(tmp_path, fast_seg_model, bikes_mp4, "    fps: 5")
    env = {**notify.env, "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6))}
    daemon = DaemonProcess(config, tmp_path / "daemon.log", env)
    try:
        ready = notify.wait_for("READY", "1", timeout=90)
        ready_at = notify.received("READY", "1")[0][0]
        assert daemon.lines("camera 'street'"), "READY=1 came before the camera was started"
        assert "STATUS" in ready
        deadline = time.monotonic() + 30
        while not any(m["STATUS"].startswith("1/1 cameras streaming") for _, m in notify.received("STATUS")):
            assert time.monotonic() < deadline, f"no STATUS= with the camera streaming: {notify.messages}"
            time.sleep(0.1)
        time.sleep(3 * WATCHDOG_S)
        pings = notify.pings(since=ready_at)
        assert len(pings) >= 4, pings
        assert max(gaps(pings)) < WATCHDOG_S, f"systemd would have restarted the daemon: gaps {gaps(pings)}"
        assert min(gaps(pings)) > WATCHDOG_S / 4, "pings are due every half interval, not on every tick"
        assert daemon.stop() == 0, daemon.text
        assert notify.received("STOPPING", "1"), "no STOPPING=1 on SIGTERM"
    finally:
        daemon.kill()
        notify.close()


def test_pings_stop_while_an_output_hangs_and_come_back(tmp_path: Path, fast_seg_model: Path, bikes_mp4: Path) -> None:
    pipe = tmp_path / "street.jsonl"
    os.mkfifo(pipe)
    notify = NotifySocket(abstract=f"streamseg-test-{uuid.uuid4().hex}")  # NOTIFY_SOCKET=@...: abstract namespace
    config = write_config(tmp_path, fast_seg_model, bikes_mp4, f"    outputs: {{jsonl: {{path: {pipe}}}}}")
    env = {**notify.env, "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6))}
    daemon = DaemonProcess(config, tmp_path / "daemon.log", env)
    reader_stop = threading.Event()
    try:
        notify.wait_for("READY", "1", timeout=90)
        notify.wait_for("WATCHDOG", "1", timeout=10)  # healthy at first

        hung_line = daemon.wait_log("is hung", timeout=60)[0]  # the pipe is full: the write blocks
        assert "camera 'street' is hung" in hung_line and "the systemd watchdog is no longer notified" in hung_line
        hung_at = time.monotonic()
        time.sleep(2 * WATCHDOG_S)
        assert daemon.proc.poll() is None
        last_ping = notify.pings()[-1]
        assert time.monotonic() - last_ping > 1.5 * WATCHDOG_S, "pings went on while the output was hung"
        assert not notify.pings(since=hung_at), "a ping was sent after the hang was logged"
        statuses = [m["STATUS"] for _, m in notify.received("STATUS", since=hung_at - 1)]
        assert any("street: hung (" in s for s in statuses), statuses

        # The consumer reads again: the write returns, the camera moves on, the pings come back.
        def read() -> None:
            fd = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
            try:
                while not reader_stop.is_set():
                    try:
                        if not os.read(fd, 1 << 16):
                            time.sleep(0.05)
                    except BlockingIOError:
                        time.sleep(0.05)
            finally:
                os.close(fd)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        drained = time.monotonic()
        deadline = drained + 20
        while not notify.pings(since=drained):
            assert time.monotonic() < deadline, f"no ping after the output wrote again:\n{daemon.text}"
            time.sleep(0.1)
        daemon.wait_log("camera 'street' is no longer hung", timeout=5)
        daemon.signal(signal.SIGTERM)
        assert daemon.stop() == 0, daemon.text
    finally:
        reader_stop.set()
        daemon.kill()
        notify.close()
