"""The sd_notify protocol as systemd receives it: datagrams on a Unix socket (a path, or the abstract namespace)."""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import pytest

from streamseg.systemd import Notifier
from tests.service import NotifySocket


@pytest.mark.parametrize("abstract", [False, True])
def test_messages_reach_the_socket(tmp_path: Path, abstract: bool) -> None:
    sock = NotifySocket(abstract=f"streamseg-{uuid.uuid4().hex}") if abstract else NotifySocket(tmp_path / "n.sock")
    try:
        notifier = Notifier.from_environ(sock.env)
        notifier.ready("1/1 cameras streaming, 9.9 fps")
        assert sock.wait_for("READY", "1", timeout=5) == {"READY": "1", "STATUS": "1/1 cameras streaming, 9.9 fps"}
        notifier.reloading()
        reloading = sock.wait_for("RELOADING", "1", timeout=5)
        # CLOCK_MONOTONIC in microseconds, what Type=notify-reload compares with the time it sent SIGHUP
        assert abs(int(reloading["MONOTONIC_USEC"]) / 1e6 - time.monotonic()) < 5
        notifier.status("starting camera 'a' (1/1)")
        notifier.status("starting camera 'a' (1/1)")  # unchanged: not sent twice
        notifier.stopping()
        sock.wait_for("STOPPING", "1", timeout=5)
        assert len(sock.received("STATUS", "starting camera 'a' (1/1)")) == 1
    finally:
        sock.close()


def test_watchdog_every_half_interval_and_only_for_our_pid(tmp_path: Path) -> None:
    sock = NotifySocket(tmp_path / "n.sock")
    try:
        theirs = Notifier.from_environ({**sock.env, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"})
        assert theirs.watchdog_interval is None and not theirs.watchdog()  # meant for another process
        ours = Notifier.from_environ({**sock.env, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())})
        assert ours.watchdog_interval == 2.0
        sent = [ours.watchdog(now=t) for t in (100.0, 100.5, 100.99, 101.0, 101.5, 102.1)]
        assert sent == [True, False, False, True, False, True]
        deadline = time.monotonic() + 5
        while len(sock.pings()) < 3:
            assert time.monotonic() < deadline, sock.messages
            time.sleep(0.02)
    finally:
        sock.close()


def test_outside_systemd_nothing_is_sent_and_a_gone_manager_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert not Notifier.from_environ({}).enabled and not Notifier.from_environ({}).send("READY=1")
    gone = Notifier(str(tmp_path / "nobody-listens.sock"))
    with caplog.at_level(logging.WARNING):
        assert not gone.send("WATCHDOG=1") and not gone.send("WATCHDOG=1")
    assert len([r for r in caplog.records if "systemd: cannot notify" in r.getMessage()]) == 1
