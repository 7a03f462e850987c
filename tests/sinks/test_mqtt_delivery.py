"""Delivery guarantees against a real mosquitto: the disk outbox across outages and restarts, TLS with
client certificates and password authentication, and what Eclipse's own `mosquitto_sub` sees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from streamseg.config.app import AppConfig
from streamseg.daemon import Daemon
from streamseg.sinks.mqtt import MqttPublisher
from streamseg.sinks.outbox import Outbox
from tests.mqtt_broker import MOSQUITTO, Broker, Subscriber
from tests.sinks.schemas import validate


def wait_until(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_an_outage_mid_stream_loses_nothing_and_keeps_order(mosquitto: Broker, tmp_path: Path) -> None:
    pub = MqttPublisher(mosquitto.host, mosquitto.port, outbox=Outbox(tmp_path / "outbox.sqlite"))
    assert pub.wait_connected(10)
    total = 1500
    produced: list[int] = []

    def produce() -> None:  # one camera publishing steadily through the outage
        for k in range(total):
            kind = "events" if k % 3 == 0 else "detections"
            pub.publish(f"front/{kind}", {"seq": k}, kind=kind)
            produced.append(k)
            time.sleep(0.004)

    received: list[int] = []
    with Subscriber(mosquitto, "streamseg/front/+") as before:
        producer = threading.Thread(target=produce)
        producer.start()
        assert wait_until(lambda: len(produced) > 200)
        mosquitto.stop()
        assert wait_until(lambda: not pub.connected)
        during_start = len(produced)
        time.sleep(3)
        during = len(produced) - during_start
        received += [m.json()["seq"] for m in before.drain(0.2)]
    assert pub.outbox is not None and pub.outbox.count >= during > 100  # waiting on disk, not in memory
    mosquitto.start()
    with Subscriber(mosquitto, "streamseg/front/+") as after:  # in before the publisher's next retry
        producer.join()
        t0 = time.monotonic()
        assert pub.wait_idle(60)
        drained = time.monotonic() - t0
        received += [m.json()["seq"] for m in after.drain(0.5)]
    pub.close(timeout=2)

    duplicates = sum(n - 1 for n in Counter(received).values())
    first_seen = list(dict.fromkeys(received))
    print(
        f"outage: {during} produced while down, {total} delivered, {duplicates} duplicates, drained in {drained:.2f} s"
    )
    assert first_seen == list(range(total))  # every message, in publish order
    assert duplicates <= 2 * pub._window  # QoS 1: only what was in flight when the broker died comes twice
    assert pub.outbox.count == 0 and pub.dropped == 0


def test_undelivered_messages_are_delivered_by_the_next_run(mosquitto: Broker, tmp_path: Path) -> None:
    mosquitto.stop()
    first = MqttPublisher(mosquitto.host, mosquitto.port, outbox=Outbox(tmp_path / "o.sqlite"))
    for k in range(20):
        first.publish("front/events", {"seq": k}, kind="events")
    first.close(timeout=0.3)  # broker down: the 20 stay on disk

    mosquitto.start()
    with Subscriber(mosquitto, "streamseg/front/events") as sub:
        second = MqttPublisher(mosquitto.host, mosquitto.port, outbox=Outbox(tmp_path / "o.sqlite"))
        second.publish("front/events", {"seq": 20}, kind="events")
        assert second.wait_idle(10)
        seqs = [m.json()["seq"] for m in sub.drain()]
        metrics = second.metrics()
        second.close(timeout=2)
    assert seqs == list(range(21))
    assert metrics["outbox"] == {"queued": 0, "bytes": 0, "acked": 21, "dropped": {"events": 0, "detections": 0}}


def mosquitto_sub(*args: str, timeout: float = 15) -> str:
    sub = shutil.which("mosquitto_sub")
    if sub is None:
        pytest.skip("mosquitto_sub is not installed (apt-get install mosquitto-clients)")
    proc = subprocess.run([sub, *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_mosquitto_sub_sees_retained_availability_and_status(mosquitto: Broker) -> None:
    pub = MqttPublisher(mosquitto.host, mosquitto.port, topic_prefix="site1")
    try:
        assert pub.wait_connected(10)
        pub.status("front", "streaming", fps=10)
        assert pub.wait_idle(5)
        where = ["-h", mosquitto.host, "-p", str(mosquitto.port)]
        out = mosquitto_sub(*where, "-t", "site1/#", "-v", "--retained-only", "-C", "2", "-W", "10")
    finally:
        pub.close(timeout=2)
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert lines["site1/available"] == "online"
    validate("available", lines["site1/available"])
    status = json.loads(lines["site1/front/status"])
    validate("status", status)
    assert status["state"] == "streaming" and status["fps"] == 10


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_broker(tmp_path: Path):
    """mosquitto with a TLS listener (test CA, client certificates required) and a password file."""
    if not Path(MOSQUITTO).is_file() or shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("needs mosquitto, mosquitto_passwd and openssl")
    pki = tmp_path / "pki"
    pki.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=test-ca", cwd=pki)
    (pki / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=pki)
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "1", "-extfile", "san.ext", cwd=pki,
        )  # fmt: skip
    passwords = pki / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "streamseg", "s3cr3t"], check=True)
    settings = (
        f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
        f"require_certificate true\nallow_anonymous false\npassword_file {passwords}\n"
        + ("user root\n" if os.geteuid() == 0 else "")  # root: keep the rights to read the files in tmp_path
    )
    broker = Broker(tmp_path, settings)
    broker.start()
    try:
        yield broker, pki
    finally:
        broker.stop()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_tls_with_client_certificate_and_password_file(tls_broker, tmp_path: Path, protocol: str) -> None:
    broker, pki = tls_broker
    (tmp_path / "mqtt-password").write_text("s3cr3t\n")
    config = AppConfig.model_validate(
        {
            "mqtt": {
                "host": "127.0.0.1",
                "port": broker.port,
                "protocol": protocol,
                "username": "streamseg",
                "password_file": "mqtt-password",
                "tls": {"ca": "pki/ca.crt", "cert": "pki/client.crt", "key": "pki/client.key"},
                "outbox": {"path": "outbox.sqlite"},
            },
            "cameras": {"front": {"source": {"url": "front.mp4"}, "model": {"path": "m.onnx"}}},
        },
        context={"base_dir": tmp_path},
    )
    daemon = Daemon(config, tmp_path / "cameras.yaml")
    daemon._start_publisher()
    pub = daemon.publisher
    try:
        assert pub.wait_connected(10)
        pub.publish("front/events", {"seq": 1}, kind="events")
        assert pub.wait_idle(5)
        tls_args = [
            "--cafile",
            str(pki / "ca.crt"),
            "--cert",
            str(pki / "client.crt"),
            "--key",
            str(pki / "client.key"),
        ]
        out = mosquitto_sub(
            "-h", "127.0.0.1", "-p", str(broker.port), *tls_args, "-u", "streamseg", "-P", "s3cr3t",
            "-V", "5" if protocol == "5" else "mqttv311", "-t", "streamseg/available", "-C", "1", "-W", "5",
        )  # fmt: skip
        assert out.strip() == "online"
    finally:
        pub.close(timeout=2)


def test_a_wrong_password_is_refused_and_said_so(tls_broker, caplog: pytest.LogCaptureFixture) -> None:
    broker, pki = tls_broker
    pub = MqttPublisher(
        "127.0.0.1",
        broker.port,
        username="streamseg",
        password="wrong",
        tls_ca=pki / "ca.crt",
        tls_cert=pki / "client.crt",
        tls_key=pki / "client.key",
    )
    try:
        assert wait_until(lambda: "refused" in caplog.text, 10)
        assert not pub.connected
        assert "wrong" not in caplog.text
    finally:
        pub.close(timeout=0.2)
