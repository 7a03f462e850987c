"""What a reload changes, from two real config files: cameras compared after `defaults` are merged in."""

from __future__ import annotations

from pathlib import Path

from streamseg.config.loader import parse_config
from streamseg.reload import plan

BASE = """
mqtt: {host: broker, topic_prefix: t}
stats_interval: 10
defaults:
  model: {path: m.onnx, conf: 0.25}
cameras:
  front: {source: {url: "rtsp://cam1/s"}}
  back: {source: {url: "rtsp://cam2/s"}, model: {conf: 0.5}}
  side: {source: {url: "rtsp://cam3/s"}, fps: 5}
"""


def load(text: str, tmp_path: Path):
    return parse_config(text, tmp_path / "cameras.yaml", check_models=False)


def test_a_defaults_change_restarts_only_the_cameras_it_reaches(tmp_path: Path) -> None:
    old = load(BASE, tmp_path)
    new = load(BASE.replace("conf: 0.25}", "conf: 0.3}"), tmp_path)  # back sets its own conf
    changes = plan(old, new)
    assert changes.restart == {"front": ["model.conf"], "side": ["model.conf"]}
    assert changes.keep == ["back"] and not changes.start and not changes.stop
    assert changes.describe() == "restart 'front' (model.conf), 'side' (model.conf); keep 'back'"


def test_added_removed_disabled_and_unchanged(tmp_path: Path) -> None:
    old = load(BASE, tmp_path)
    text = BASE.replace(
        '  side: {source: {url: "rtsp://cam3/s"}, fps: 5}\n', '  yard: {source: {url: "rtsp://cam4/s"}}\n'
    )
    text = text.replace(
        'back: {source: {url: "rtsp://cam2/s"}', 'back: {enabled: false, source: {url: "rtsp://cam2/s"}'
    )
    changes = plan(old, load(text, tmp_path))
    assert changes.start == ["yard"] and sorted(changes.stop) == ["back", "side"] and changes.keep == ["front"]
    assert not changes.restart and not changes.applied and not changes.needs_restart
    again = plan(load(text, tmp_path), old)  # enabled again: started
    assert sorted(again.start) == ["back", "side"] and again.stop == ["yard"]


def test_global_settings_applied_or_left_for_a_restart(tmp_path: Path) -> None:
    old = load(BASE, tmp_path)
    text = BASE.replace("stats_interval: 10", "stats_interval: 5\nlog_level: debug\nhomeassistant: {enabled: true}")
    changes = plan(old, load(text.replace("host: broker", "host: broker2"), tmp_path))
    assert sorted(changes.applied) == ["homeassistant", "log_level", "stats_interval"]
    assert changes.needs_restart == ["mqtt"]
    assert changes.keep == ["front", "back", "side"] and not changes.restart
    assert plan(old, load(BASE, tmp_path)).empty
