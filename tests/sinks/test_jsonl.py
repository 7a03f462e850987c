"""JsonlSink against real file-system failures: a full disk, a full device, a file moved away, a restart."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from streamseg.sinks.jsonl import JsonlSink
from tests.mounts import fill, tmpfs
from tests.sinks.helpers import boxes_only, frame_result

ENOSPC = "[Errno 28] No space left on device"


def results(n: int, start: int = 0, boxes: int = 12) -> list:
    """Frame results whose detections line is about 1.5 KB (12 boxes)."""
    return [frame_result(boxes_only(["car"] * boxes), frame=i) for i in range(start, start + n)]


def sink_for(path: Path, **kw) -> JsonlSink:
    sink = JsonlSink("front", path, **kw)
    sink.retry_initial, sink.retry_max = 0.05, 0.2  # quick retries: the test waits for recovery
    return sink


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def frames_in(path: Path) -> list[int]:
    """Frame numbers of the detections lines; fails on any line that is not whole JSON."""
    return [json.loads(line)["frame"] for line in path.read_text().splitlines()]


def test_full_disk_degrades_then_recovers_with_every_line_whole(tmp_path: Path) -> None:
    """A real disk full mid-run (a 64 KiB tmpfs): the sink says so at once, retries, and once space is freed
    writes everything it held back; the line a short write cut off is not left in the file."""
    with tmpfs(tmp_path / "disk", size_kb=64) as disk:
        filler = fill(disk, leave=6000)  # room for 3-4 results, then a write cut short by ENOSPC
        path = disk / "out.jsonl"
        sink = sink_for(path)
        sink.start()
        for r in results(30):
            assert sink.submit(r)  # a live camera's sink: never blocks, the queue holds what waits
        wait_until(lambda: sink.error is not None, "the sink reports the full disk")
        assert sink.error == f"jsonl output {path}: {ENOSPC}"
        time.sleep(0.3)  # a few retries, all failing
        written_so_far = frames_in(path)  # whole JSON lines only: the part-line of the short write is gone
        assert 0 < len(written_so_far) < 30 and written_so_far == list(range(len(written_so_far)))
        filler.unlink()  # space is freed
        wait_until(lambda: sink.written == 30, "the sink has written everything")
        sink.stop()
        assert sink.error is None and sink.dropped == 0 and sink.failures >= 2
        assert frames_in(path) == list(range(30))  # nothing lost, nothing twice


def test_output_on_a_full_device_is_reported_and_recovers_when_the_path_is_fixed(tmp_path: Path) -> None:
    """The output path points at /dev/full (every write: ENOSPC); once the path is a real file again, the
    results held back are written."""
    path = tmp_path / "out.jsonl"
    path.symlink_to("/dev/full")
    sink = sink_for(path)
    sink.start()
    for r in results(10):
        assert sink.submit(r)
    wait_until(lambda: sink.error is not None, "the sink reports the failure")
    assert sink.error == f"jsonl output {path}: {ENOSPC}" and sink.written == 0
    fixed = tmp_path / "fixed.jsonl"
    fixed.touch()
    os.replace(fixed, path)  # the path is a regular file again
    wait_until(lambda: sink.written == 10, "the sink has written everything")
    sink.stop()
    assert sink.error is None and frames_in(path) == list(range(10))


def test_a_file_moved_away_or_deleted_is_started_again(tmp_path: Path) -> None:
    """Log rotation (move) or a deletion: the next lines go to a new file at the path, not into the void."""
    path = tmp_path / "out.jsonl"
    sink = sink_for(path, block_when_full=True)
    sink.start()
    for r in results(5):
        sink.submit(r)
    wait_until(lambda: sink.written == 5, "5 written")
    path.rename(tmp_path / "out.jsonl.1")
    for r in results(5, start=5):
        sink.submit(r)
    wait_until(lambda: sink.written == 10, "10 written")
    path.unlink()
    for r in results(5, start=10):
        sink.submit(r)
    sink.stop()
    assert sink.error is None
    assert frames_in(tmp_path / "out.jsonl.1") == list(range(5))
    assert frames_in(path) == list(range(10, 15))


def test_a_restart_appends_and_keeps_a_line_cut_short_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    earlier = b'{"topic":"detections","frame":0}\n{"topic":"detections","fra'  # a crash cut the last line
    path.write_bytes(earlier)
    sink = sink_for(path, block_when_full=True)
    sink.start()
    for r in results(3, start=100):
        sink.submit(r)
    sink.stop()
    data = path.read_bytes()
    assert data.startswith(earlier + b"\n")  # nothing of the earlier run is lost or overwritten
    assert [json.loads(line)["frame"] for line in data[len(earlier) + 1 :].splitlines()] == [100, 101, 102]
    assert sink.outputs() == [path]


def test_a_sink_that_got_nothing_lists_no_output(tmp_path: Path) -> None:
    sink = sink_for(tmp_path / "out.jsonl")
    sink.start()
    sink.stop()
    assert sink.outputs() == []
