"""No camera or broker password in the daemon's logs, its retained status, its stats or its metrics.

Real mosquitto, real model; the cameras point at a closed local port, with the password written in each of
the ways cameras ask for it, so every one of them fails to connect and reports why.
"""

from __future__ import annotations

import logging
import urllib.request
from pathlib import Path

import pytest

from tests.mqtt_broker import Subscriber, free_port, mosquitto  # noqa: F401 - the fixture
from tests.test_live_daemon import Running, wait_until

# One distinct secret per camera, each holding characters that end a URL's authority or start its query.
SECRETS = {
    "slash": "Sl/sh-secret",
    "hash": "H#sh-secret",
    "question": "Qu?st-secret",
    "at_colon": "At@co:lon-secret",
    "query": "qu/ery#secret&x",
    "path": "pa/th?secret",
    "encoded": "Enc%2Fsecret",
}
MQTT_PASSWORD = "mqtt-broker-secret"


def urls(port: int) -> dict[str, str]:
    host = f"127.0.0.1:{port}"
    return {
        "slash": f"rtsp://admin:{SECRETS['slash']}@{host}/live",
        "hash": f"rtsp://admin:{SECRETS['hash']}@{host}/live",
        "question": f"rtsp://admin:{SECRETS['question']}@{host}/live",
        "at_colon": f"rtsp://admin:{SECRETS['at_colon']}@{host}/live",
        "query": f"rtsp://{host}/live?user=admin&pwd={SECRETS['query']}",
        "path": f"rtsp://{host}/user=admin&password={SECRETS['path']}&channel=1&stream=0.sdp?",
        "encoded": f"rtsp://admin:{SECRETS['encoded']}@{host}/live",
    }


def leaks(text: str) -> list[str]:
    found = [s for s in [*SECRETS.values(), MQTT_PASSWORD] if s in text]
    found += [s for s in ("Enc/secret", "Sl/sh", "At@co") if s in text]  # decoded or partial forms
    return found


def test_no_password_reaches_logs_status_stats_or_metrics(
    tmp_path: Path,
    mosquitto,  # noqa: F811
    seg_model: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    closed, metrics_port = free_port(), free_port()
    # Every camera but one gives up (failed); `slash` retries for ever, which keeps the daemon running.
    cameras = "".join(
        f'  {name}:\n    source: {{url: "{url}", timeout: 2, reconnect: {{initial: 0.1, max: 0.2, max_retries: '
        f"{'null' if name == 'slash' else 1}}}}}\n"
        for name, url in urls(closed).items()
    )
    text = f"""
mqtt: {{host: {mosquitto.host}, port: {mosquitto.port}, topic_prefix: t, username: u, password: {MQTT_PASSWORD}}}
metrics_port: {metrics_port}
stats_interval: 1
defaults:
  model: {{path: {seg_model}, threads: 1}}
  tracker: {{type: none}}
cameras:
{cameras}"""
    with Subscriber(mosquitto, "t/#") as sub, Running(tmp_path, text) as daemon:
        others = [c for name, c in daemon.cameras.items() if name != "slash"]
        wait_until(lambda: all(c.done for c in others), 60, "the cameras to give up")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        wait_until(lambda: "t/stats" in {m.topic for m in sub.drain(quiet=0.2)}, 10, "a stats message")
        live = sub.drain(quiet=0.5)
        with Subscriber(mosquitto, "t/+/status") as late:  # what a dashboard sees when it connects
            retained = {m.topic: m.json() for m in late.drain(quiet=0.5) if m.retain}

    assert set(daemon.cameras) == set(SECRETS)
    for name, camera in daemon.cameras.items():
        status = retained[f"t/{name}/status"]
        assert status["state"] == ("reconnecting" if name == "slash" else "failed"), status
        assert "***" in status["error"] and not leaks(status["error"]), status
        assert name == "slash" or (camera.error and not leaks(camera.error)), camera.error
    assert not leaks(str(retained))
    assert not leaks("\n".join(m.text for m in live)), "a published message holds a password"
    assert "streamseg_camera_state" in metrics and not leaks(metrics)
    assert "reconnecting" in caplog.text and "failed" in caplog.text
    assert not leaks(caplog.text), leaks(caplog.text)
