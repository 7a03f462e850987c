"""SIGHUP hot reload of `streamseg run`, a real subprocess on the real model with a real mosquitto: only the camera
whose settings changed restarts (the others' frame counters never reset), a removed camera ends its tracks and
leaves no retained topics, a new one starts, nothing queued for MQTT is lost, and an invalid config is refused
with one log line while everything keeps running. systemd hears RELOADING=1 then READY=1."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.mqtt_broker import Subscriber, mosquitto  # noqa: F401 - the fixture
from tests.service import DaemonProcess, NotifySocket


def cameras_yaml(broker, model: Path, cameras: str) -> str:
    return f"""
mqtt: {{host: {broker.host}, port: {broker.port}, topic_prefix: t}}
stats_interval: 0.5
defaults:
  model: {{path: {model}}}
  fps: 4
cameras:
{cameras}
"""


def camera(name: str, video: Path, extra: str = "") -> str:
    return f"  {name}:\n    source: {{url: {video}, loop: true}}\n{extra}"


def frames(stats: list[dict], name: str) -> list[int]:
    return [s["cameras"][name]["frames"] for s in stats if "frames" in s["cameras"].get(name, {})]


def wait_stats(sub_messages: list, sub: Subscriber, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sub_messages.extend(sub.drain(quiet=0.2, limit=0.5))
        stats = [m.json() for m in sub_messages if m.topic == "t/stats"]
        if stats and predicate(stats[-1]["cameras"]):
            return
    raise AssertionError(f"timed out waiting for {what}")


def test_sighup_restarts_only_the_changed_camera(
    tmp_path: Path,
    mosquitto,  # noqa: F811
    fast_seg_model: Path,
    bikes_mp4: Path,
    carphone_mp4: Path,
) -> None:
    config = tmp_path / "cameras.yaml"
    conf = "    model: {{conf: {}}}\n"
    first = [camera("a", bikes_mp4), camera("b", carphone_mp4, conf.format(0.25)), camera("c", bikes_mp4)]
    config.write_text(cameras_yaml(mosquitto, fast_seg_model, "".join(first)))
    notify = NotifySocket(tmp_path / "notify.sock")
    messages: list = []
    with Subscriber(mosquitto, "t/#") as sub:
        daemon = DaemonProcess(config, tmp_path / "daemon.log", notify.env)
        try:
            notify.wait_for("READY", "1", timeout=90)
            wait_stats(messages, sub, lambda c: all(c[n].get("frames", 0) >= 5 for n in "abc"), 60, "a, b, c running")

            # b's threshold changes, c goes, d comes: one reload
            second = [camera("a", bikes_mp4), camera("b", carphone_mp4, conf.format(0.5)), camera("d", carphone_mp4)]
            config.write_text(cameras_yaml(mosquitto, fast_seg_model, "".join(second)))
            hup = time.monotonic()
            daemon.signal(signal.SIGHUP)
            plan = daemon.wait_log(f"reload {config}: ", timeout=30)[0]
            assert "restart 'b' (model.conf); start 'd'; stop 'c'; keep 'a'" in plan, plan
            notify.wait_for("RELOADING", "1", since=hup, timeout=30)
            wait_stats(messages, sub, lambda c: c.get("d", {}).get("frames", 0) >= 5 and "c" not in c, 60, "d up")
            notify.wait_for("READY", "1", since=hup, timeout=30)
            b_stopped = daemon.wait_log("reload: camera 'b' stopped after", timeout=5)[0]

            # an invalid config: refused, one line, and nothing restarts
            broken = [camera("a", bikes_mp4), camera("b", carphone_mp4, conf.format(2)), camera("d", carphone_mp4)]
            config.write_text(cameras_yaml(mosquitto, fast_seg_model, "".join(broken)))
            daemon.signal(signal.SIGHUP)
            refused = daemon.wait_log("reload refused", timeout=30)
            before = frames([m.json() for m in messages if m.topic == "t/stats"], "a")[-1]
            wait_stats(messages, sub, lambda c: c["a"]["frames"] >= before + 5, 30, "a still running")
            assert daemon.stop() == 0, daemon.text
        finally:
            daemon.kill()
            notify.close()
        messages += sub.drain(quiet=1.0)

    log = daemon.text
    assert len(refused) == 1 and len(daemon.lines("reload refused")) == 1, log
    assert "cameras.b.model.conf" in refused[0] and "the running config stays" in refused[0], refused[0]
    assert len(daemon.lines(f"reload {config}: ")) == 1, "the refused reload changed something"

    stats = [m.json() for m in messages if m.topic == "t/stats"]
    a, b = frames(stats, "a"), frames(stats, "b")
    assert a == sorted(a), "camera a restarted: its frame counter went back"
    resets = [i for i, (x, y) in enumerate(zip(b, b[1:], strict=False)) if y < x]
    assert len(resets) == 1, f"camera b should restart exactly once (at the reload): {b}"
    assert all("c" not in s["cameras"] for s in stats[stats.index(next(s for s in stats if "d" in s["cameras"])) :])

    # Nothing queued for MQTT was lost: every frame the old b processed reached the broker.
    b_frames = [m.json()["frame"] for m in messages if m.topic == "t/b/detections"]
    split = next(i for i, (x, y) in enumerate(zip(b_frames, b_frames[1:], strict=False)) if y < x) + 1
    old_b = int(b_stopped.split("stopped after ")[1].split()[0])
    assert split == old_b, f"old camera b processed {old_b} frames, {split} detections messages arrived"
    a_frames = [m.json()["frame"] for m in messages if m.topic == "t/a/detections"]
    assert a_frames == sorted(a_frames) and len(set(a_frames)) == len(a_frames), "camera a's frames went back"

    # The removed camera ended its tracks, its status went, and it left no retained topic behind.
    c_events = [m.json()["type"] for m in messages if m.topic == "t/c/events"]
    assert c_events.count("new") == c_events.count("end") > 0
    with Subscriber(mosquitto, "t/#") as late:
        retained = {m.topic: m for m in late.drain(quiet=0.5) if m.retain}
    assert not [t for t in retained if t.startswith("t/c/")], sorted(retained)
    assert retained["t/d/status"].json()["state"] == "stopped"
    assert retained["t/a/status"].json()["state"] == "stopped"
