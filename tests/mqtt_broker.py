"""A real mosquitto broker on a free loopback port, and a real subscriber, for any test folder.

Use it from a conftest.py:  ``from tests.mqtt_broker import mosquitto  # noqa: F401``
"""

from __future__ import annotations

import json
import queue
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A mosquitto process; `stop()` and `start()` again on the same port simulate an outage."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path, settings: str = "allow_anonymous true\n") -> None:
        """settings: mosquitto.conf lines for the listener (TLS files, password_file, ...)."""
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n{settings}persistence false\nlog_dest stderr\nlog_type all\n"
        )
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        if self._proc is not None:
            return
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}:\n{self.log.read_text()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A fresh broker for one test (no persistence: a restart forgets retained messages)."""
    if not Path(MOSQUITTO).is_file():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto): the MQTT tests need a real broker")
    broker = Broker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self):
        return json.loads(self.payload)


class Subscriber:
    """A paho client collecting every message on `topics` into a queue (use as a context manager)."""

    def __init__(self, broker: Broker, *topics: str, qos: int = 1) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        self._topics = topics or ("#",)
        self._qos = qos
        self._subscribed = queue.Queue()
        self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *args: self._subscribed.put(True)
        self._client.on_message = lambda c, u, m: self.messages.put(Message(m.topic, m.payload, bool(m.retain)))
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        self._subscribed.get(timeout=10)  # retained messages follow the SUBACK: tests can wait for them

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        client.subscribe([(t, self._qos) for t in self._topics])

    def get(self, timeout: float = 10.0) -> Message:
        return self.messages.get(timeout=timeout)

    def wait_for(self, topic: str, timeout: float = 10.0, payload: str | None = None) -> Message:
        """The next message on `topic` (and with `payload`, when given); others are discarded."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no message on {topic}" + (f" with {payload!r}" if payload else ""))
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if msg.topic == topic and (payload is None or msg.text == payload):
                return msg

    def drain(self, quiet: float = 0.3, limit: float | None = None) -> list[Message]:
        """Everything received until nothing arrives for `quiet` seconds, or for at most `limit` seconds (a
        daemon that publishes all the time is never quiet)."""
        out = []
        end = None if limit is None else time.monotonic() + limit
        while end is None or time.monotonic() < end:
            wait = quiet if end is None else max(0.0, min(quiet, end - time.monotonic()))
            try:
                out.append(self.messages.get(timeout=wait))
            except queue.Empty:
                return out
        return out

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        """Publish from this client (QoS 1) and wait until the broker has it."""
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
