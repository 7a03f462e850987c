"""The daemon's outputs end to end (real model, real video, real mosquitto): a failing output is visible and
recovers, a restart destroys nothing, a crash leaves a playable recording, the summary tells the truth."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import av
import pytest

from streamseg.config import load_config
from streamseg.daemon import Daemon
from tests.mounts import tmpfs
from tests.mqtt_broker import Subscriber, free_port, mosquitto  # noqa: F401 - the fixture
from tests.sinks.schemas import validate
from tests.test_live_daemon import Running, wait_until

ENOSPC = "[Errno 28] No space left on device"


def next_status(sub: Subscriber, state: str, timeout: float = 60.0) -> dict:
    """The next `test/bikes/status` payload in `state` (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = sub.wait_for("test/bikes/status", timeout=max(0.1, deadline - time.monotonic()))
        payload = msg.json()
        validate("status", payload)
        if payload["state"] == state:
            return payload


def next_stats(sub: Subscriber, predicate, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        payload = sub.wait_for("test/stats", timeout=max(0.1, deadline - time.monotonic())).json()
        validate("stats", payload)
        if predicate(payload["cameras"]["bikes"]):
            return payload["cameras"]["bikes"]


def detection_frames(path: Path) -> list[int]:
    """Frame numbers of the detections lines; every line must be whole JSON."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [obj["frame"] for obj in lines if obj["topic"] == "detections"]


def test_a_failing_output_is_degraded_everywhere_then_recovers_losing_nothing(
    tmp_path: Path,
    mosquitto,  # noqa: F811
    seg_model: Path,
    bikes_mp4: Path,
) -> None:
    """The JSON-lines output's path is switched to /dev/full mid-run (every write: ENOSPC, as a full disk),
    then back: the camera is `degraded` with the file and the reason in the retained status, the stats and
    the metrics, then `streaming` again, and the file holds every processed frame once, in order."""
    out = tmp_path / "out" / "bikes.jsonl"
    metrics_port = free_port()
    text = f"""
mqtt: {{host: {mosquitto.host}, port: {mosquitto.port}, topic_prefix: test}}
stats_interval: 1
metrics_port: {metrics_port}
defaults:
  model: {{path: {seg_model}, threads: 1}}
cameras:
  bikes:
    source: {{url: {bikes_mp4}, loop: true}}
    fps: 5
    outputs: {{jsonl: {{path: out/bikes.jsonl}}}}
"""
    with Subscriber(mosquitto, "test/#") as sub:
        with Running(tmp_path, text) as daemon:
            next_status(sub, "streaming")
            wait_until(lambda: out.is_file() and len(out.read_text().splitlines()) >= 3, 60, "first lines")

            kept = tmp_path / "kept.jsonl"
            os.link(out, kept)  # the file itself stays as it is
            full = tmp_path / "full"
            full.symlink_to("/dev/full")
            os.replace(full, out)  # the output path now leads to a device that is always full

            status = next_status(sub, "degraded", timeout=30)
            assert status["error"] == f"jsonl output {out}: {ENOSPC}"
            with Subscriber(mosquitto, "test/bikes/status") as late:  # retained: what a newcomer sees
                assert late.wait_for("test/bikes/status").json()["state"] == "degraded"
            cam = next_stats(sub, lambda c: c["state"] == "degraded")
            assert cam["error"] == status["error"]
            assert cam["sinks"]["jsonl"]["state"] == "failing" and cam["sinks"]["jsonl"]["error"] == status["error"]
            assert cam["sinks"]["jsonl"]["failures"] >= 1
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
            assert 'streamseg_camera_state{camera="bikes",state="degraded"} 1.0' in metrics
            assert 'streamseg_sink_failing{camera="bikes",sink="jsonl"} 1.0' in metrics
            failures = [
                ln for ln in metrics.splitlines() if ln.startswith('streamseg_sink_failures_total{camera="bikes"')
            ]
            assert failures and float(failures[0].split()[-1]) >= 1

            os.replace(kept, out)  # the path leads to the file again: the sink writes what it held back
            status = next_status(sub, "streaming", timeout=60)
            assert status["error"] is None
            wait_until(lambda: daemon.cameras["bikes"].sinks[0].depth == 0, 60, "the backlog written")
        camera = daemon.cameras["bikes"]
    sink = camera.sinks[0]
    assert camera.state == "stopped" and sink.error is None and sink.dropped == 0 and sink.failures >= 1
    frames = detection_frames(out)
    assert len(frames) == camera.stats.frames  # every processed frame, once
    assert frames == sorted(set(frames))  # in order, none twice


def run(tmp: Path, text: str) -> tuple[Daemon, int]:
    path = tmp / "cameras.yaml"
    path.write_text(text)
    daemon = Daemon(load_config(path), path)
    return daemon, daemon.run(handle_signals=False)


def summary(caplog: pytest.LogCaptureFixture, camera: str) -> str:
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"summary {camera!r}")]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_second_run_appends_and_writes_a_new_video_file(
    tmp_path: Path, seg_model: Path, bikes_mp4: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    text = f"""
defaults:
  model: {{path: {seg_model}, threads: 2}}
cameras:
  bikes:
    source: {{url: {bikes_mp4}}}
    fps: 5
    outputs:
      video: {{path: out/bikes.mp4}}
      jsonl: {{path: out/bikes.jsonl}}
"""
    out = tmp_path / "out"
    _, code = run(tmp_path, text)
    assert code == 0
    first_lines = (out / "bikes.jsonl").read_text()
    first_video = hashlib.sha256((out / "bikes.mp4").read_bytes()).hexdigest()
    first_summary = summary(caplog, "bikes")
    caplog.clear()

    _, code = run(tmp_path, text)
    assert code == 0
    text_after = (out / "bikes.jsonl").read_text()
    assert text_after.startswith(first_lines) and len(text_after) > len(first_lines)  # appended
    assert detection_frames(out / "bikes.jsonl") == 2 * list(range(0, 250, 5))
    assert hashlib.sha256((out / "bikes.mp4").read_bytes()).hexdigest() == first_video  # untouched
    with av.open(str(out / "bikes-1.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 50
    # the summaries name the files actually written
    assert f"wrote {out / 'bikes.jsonl'}, {out / 'bikes.mp4'}" in first_summary
    assert f"wrote {out / 'bikes.jsonl'}, {out / 'bikes-1.mp4'}" in summary(caplog, "bikes")


def test_the_summary_names_only_files_that_were_written(
    tmp_path: Path, seg_model: Path, carphone_mp4: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    _, code = run(
        tmp_path,
        f"""
defaults:
  model: {{path: {seg_model}}}
  tracker: {{type: none}}
cameras:
  gone:
    source: {{url: {tmp_path / "missing.mp4"}}}
    outputs: {{video: {{path: gone.mp4}}, jsonl: {{path: gone.jsonl}}}}
  good:
    source: {{url: {carphone_mp4}}}
    fps: 5
    outputs: {{video: {{path: good.mp4}}}}
""",
    )
    assert code == 1
    gone = summary(caplog, "gone")
    assert "failed" in gone and "wrote" not in gone and not (tmp_path / "gone.mp4").exists()
    assert f"wrote {tmp_path / 'good.mp4'}" in summary(caplog, "good")


def test_a_killed_daemon_leaves_a_playable_recording(tmp_path: Path, seg_model: Path, bikes_mp4: Path) -> None:
    """SIGKILL mid-run (no chance to finish the file): what was written before plays."""
    config = tmp_path / "cameras.yaml"
    config.write_text(
        f"""
defaults:
  model: {{path: {seg_model}, threads: 2}}
cameras:
  bikes:
    source: {{url: {bikes_mp4}, loop: true}}
    outputs: {{video: {{path: bikes.mp4}}}}
"""
    )
    video = tmp_path / "bikes.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamseg", "run", str(config)], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        # 2-second fragments of a 25 fps stream: wait for a few seconds of video on disk
        wait_until(lambda: video.is_file() and video.stat().st_size > 400_000, 180, "the recording to grow")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    with av.open(str(video)) as container:  # a plain MP4 fails here: "moov atom not found"
        frames = [f.pts for f in container.decode(video=0)]
    assert len(frames) >= 50 and frames == sorted(frames)


@pytest.mark.parametrize("where", ["directory", "read-only"])
def test_an_outbox_that_cannot_be_opened_is_one_line_and_exit_2(tmp_path: Path, seg_model: Path, where: str) -> None:
    if where == "directory":
        outbox = tmp_path / "outbox"  # a folder where the database file should be
        outbox.mkdir()
        expected = f"streamseg: error: MQTT outbox {outbox}: cannot open: unable to open database file"
        run_and_check(tmp_path, seg_model, outbox, expected)
    else:
        with tmpfs(tmp_path / "ro", size_kb=64, read_only=True) as ro:
            outbox = ro / "outbox.sqlite"
            expected = (
                f"streamseg: error: MQTT outbox {outbox}: cannot open: [Errno 30] Read-only file system: {outbox}.lock"
            )
            run_and_check(tmp_path, seg_model, outbox, expected)


def run_and_check(tmp_path: Path, seg_model: Path, outbox: Path, expected: str) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text(
        f"""
mqtt: {{host: 127.0.0.1, port: {free_port()}, outbox: {{path: {outbox}}}}}
defaults:
  model: {{path: {seg_model}}}
cameras:
  bikes:
    source: {{url: /nowhere/bikes.mp4}}
"""
    )
    proc = subprocess.run(
        [sys.executable, "-m", "streamseg", "run", str(config)], capture_output=True, text=True, timeout=60
    )
    # exit 2: the shipped systemd unit does not restart (RestartPreventExitStatus=2)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [expected]
