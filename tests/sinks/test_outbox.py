"""The disk outbox on its own: order, persistence across reopen, the size bound and its policy."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from streamseg.errors import StreamsegError
from streamseg.sinks.outbox import Outbox, default_path


def test_rows_come_back_in_order_and_leave_only_when_acked(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    for k in range(5):
        box.put(f"p/cam/{'events' if k % 2 else 'detections'}", f"m{k}".encode(), kind="events", qos=1)
    rows = box.after(0, 3)
    assert [r.payload for r in rows] == [b"m0", b"m1", b"m2"]
    assert [r.payload for r in box.after(rows[-1].id, 10)] == [b"m3", b"m4"]
    box.ack(rows[1].id)
    box.ack(rows[1].id)  # a second ack (QoS 1 duplicate) changes nothing
    assert box.count == 4 and box.acked == 1
    assert [r.payload for r in box.after(0, 10)] == [b"m0", b"m2", b"m3", b"m4"]
    box.close()


def test_unacked_rows_survive_a_restart_and_ids_keep_growing(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    for k in range(3):
        box.put("t", str(k).encode(), kind="events")
    box.ack(box.after(0, 1)[0].id)
    last = box.after(0, 10)[-1].id
    box.close()

    again = Outbox(tmp_path / "o.sqlite")
    assert again.count == 2 and again.bytes == 2
    again.put("t", b"new", kind="events")
    rows = again.after(0, 10)
    assert [r.payload for r in rows] == [b"1", b"2", b"new"]
    assert rows[-1].id > last  # AUTOINCREMENT: a new row never takes an old id, so id order is publish order
    again.close()


def test_a_full_outbox_drops_detections_before_events(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_messages=100, policy="detections_first")
    for k in range(100):
        box.put("d" if k % 2 else "e", str(k).encode(), kind="detections" if k % 2 else "events")
    with caplog.at_level(logging.WARNING, logger="streamseg.sinks.outbox"):
        box.put("e", b"100", kind="events")
    assert box.count == 100 and box.dropped == {"detections": 1}
    assert "outbox full" in caplog.text and "dropped the oldest 1 detections" in caplog.text
    assert [r.payload for r in box.after(0, 2)] == [b"0", b"2"]  # the oldest detection (1) is gone
    for k in range(101, 250):  # 49 detections left: after them, events go, oldest first
        box.put("e", str(k).encode(), kind="events")
    assert box.count == 100 and box.dropped["detections"] == 50 and box.dropped["events"] == 100
    assert {r.topic for r in box.after(0, 1000)} == {"e"}
    assert box.stats() == {"queued": 100, "bytes": box.bytes, "acked": 0, "dropped": {"events": 100, "detections": 50}}
    box.close()


def test_the_byte_bound_and_the_oldest_policy(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_messages=1000, max_bytes=1000, policy="oldest")
    for k in range(30):
        box.put("t", bytes(100), kind="events" if k % 2 else "detections")
    assert box.bytes <= 1000 and box.count == 10
    assert sum(box.dropped.values()) == 20


def test_one_process_per_outbox_file(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    with pytest.raises(StreamsegError, match="in use by another streamseg process"):
        Outbox(tmp_path / "o.sqlite")
    box.close()
    Outbox(tmp_path / "o.sqlite").close()  # free again once closed


def test_default_path_follows_the_state_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "svc"))
    assert default_path("site/a") == tmp_path / "svc" / "outbox-site_a.sqlite"
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_path("streamseg") == tmp_path / "xdg" / "streamseg" / "outbox-streamseg.sqlite"


def test_a_burst_of_drops_is_one_warning_with_the_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A full outbox during a long outage drops a batch per put at the edge: the log gets one line, not
    one per message; the running count is in that line's successors (one a minute at most) and at close."""
    box = Outbox(tmp_path / "o.sqlite", max_messages=100)
    with caplog.at_level(logging.WARNING, logger="streamseg.sinks.outbox"):
        for k in range(1000):
            box.put("d", str(k).encode(), kind="detections")
        during = [r.getMessage() for r in caplog.records]
        box.close()
        after = [r.getMessage() for r in caplog.records][len(during) :]
    assert box.dropped == {"detections": 900}
    assert len(during) == 1, during
    assert len(after) == 1 and "900 detections" in after[0], after
