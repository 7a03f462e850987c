"""MQTT output: one shared broker connection per process, one ordered sink per camera.

Topics and payloads are the public contract in docs/mqtt.md (schemas in streamseg/sinks/schemas/).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import supervision as sv
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from streamseg.config.snapshots import SnapshotsConfig
from streamseg.detections import labels_of
from streamseg.sinks.base import FrameResult, Sink
from streamseg.sinks.outbox import Outbox
from streamseg.sinks.serialize import dumps, frame_payload

log = logging.getLogger(__name__)


def _not_a_real_error(record: logging.LogRecord) -> bool:
    # paho logs "Client is not connected" at ERROR when its thread stops before any connection succeeded
    return not record.getMessage().startswith("Client is not connected")


_paho_log = logging.getLogger(f"{__name__}.paho")
_paho_log.addFilter(_not_a_real_error)

STATES = ("starting", "streaming", "degraded", "reconnecting", "failed", "stopped")
PROTOCOLS = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}


class MqttPublisher:
    """The process's one MQTT client: availability, camera status, stats, and publishing for the sinks.

    The constructor starts connecting (unless `autostart=False`; then call `start()`) and returns at once
    even when the broker is down: paho's network thread keeps retrying (1 s doubling to 30 s). Messages
    published with a `kind` (events, detections) go to the disk `outbox` when there is one, and a sender
    thread hands them to paho in order, at most `outbox_window` unacknowledged at a time; a row leaves the
    outbox when the broker acknowledged it. Other messages (and all of them without an outbox) wait in paho's
    memory queue while the broker is down (QoS >= 1 only, at most `max_queued`; the rest are counted in
    `dropped`). Thread-safe: every sink publishes from its own thread. Credentials are never logged.
    """

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        topic_prefix: str = "streamseg",
        qos: int = 1,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        keepalive: int = 30,
        protocol: str = "3.1.1",
        tls: bool = False,
        tls_ca: str | os.PathLike | None = None,
        tls_cert: str | os.PathLike | None = None,
        tls_key: str | os.PathLike | None = None,
        tls_insecure: bool = False,
        max_queued: int = 10_000,
        max_inflight: int = 20,
        outbox: Outbox | None = None,
        outbox_window: int = 100,
        autostart: bool = True,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"MQTT protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        self.host, self.port = host, port
        self.prefix = topic_prefix.rstrip("/")
        self.qos = qos
        self.client_id = client_id or f"streamseg-{socket.gethostname()}-{os.getpid()}"
        self.keepalive = keepalive
        self.dropped = 0  # messages paho refused (queue full, or QoS 0 while disconnected)

        self.outbox = outbox
        self._window = outbox_window
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified on acks, new outbox rows, (dis)connection
        self._inflight: dict[int, int | None] = {}  # paho mid -> outbox row id (None: not from the outbox)
        self._early: set[int] = set()  # mids acknowledged before publish() returned them to us
        self._rows_out = 0  # outbox rows handed to paho and not yet acknowledged
        self._last_row = 0  # highest outbox row id handed to paho
        self._resync = False  # after a connection loss: paho re-sends the rows it holds before we add more
        self._sender: threading.Thread | None = None
        self._connected = threading.Event()
        self._down_logged = False  # one warning per outage, not one per retry
        self._drop_logged = False
        self._status: dict[str, dict[str, Any]] = {}  # camera -> last status payload
        self._started = self._closed = False

        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=PROTOCOLS[protocol],
        )
        self._client.enable_logger(_paho_log)
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls or tls_ca or tls_cert or tls_key:  # tls=True alone: the system CAs
            self._client.tls_set(ca_certs=_path(tls_ca), certfile=_path(tls_cert), keyfile=_path(tls_key))
            self._client.tls_insecure_set(tls_insecure)
        self._client.will_set(self.topic("available"), "offline", qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        # paho sends QoS 1 messages in publish order and re-sends unacknowledged ones in that same order
        # after a reconnect, so per-camera order holds with several messages in flight.
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(max_queued)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        if autostart:
            self.start()

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> MqttPublisher:
        """Connect in the background; never raises because the broker is down."""
        if not self._started:
            self._started = True
            self._client.connect_async(self.host, self.port, keepalive=self.keepalive)
            self._client.loop_start()
            if self.outbox is not None:
                self._sender = threading.Thread(target=self._send_outbox, name="mqtt-outbox", daemon=True)
                self._sender.start()
        return self

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Mark every camera `stopped` and the daemon `offline`, wait (bounded) for delivery, disconnect.

        What the outbox still holds then (the broker is down) stays on disk for the next start.
        """
        if self._closed:
            return
        deadline = time.monotonic() + timeout
        if self._started and self.outbox is not None:
            self.wait_idle(timeout)  # events before `stopped` / `offline`, when the broker is there
        for camera in list(self._status):
            self.status(camera, "stopped")
        self.publish("available", "offline", retain=True, qos=1)
        self._closed = True
        if self._started:
            if not self.wait_idle(max(0.0, deadline - time.monotonic())):
                log.warning("MQTT: closing with %d message(s) not delivered to %s", self.pending, self._where)
            with self._idle:
                self._idle.notify_all()  # the sender sees _closed and ends
            if self._sender is not None:
                self._sender.join(5)
            if self.connected:  # paho logs an error for disconnect() without a connection
                self._client.disconnect()
            self._client.loop_stop()
        if self.outbox is not None:
            if self.outbox.count:
                log.warning(
                    "MQTT: %d message(s) stay in the outbox %s for the next start", self.outbox.count, self.outbox.path
                )
            self.outbox.close()

    @property
    def pending(self) -> int:
        """Messages not yet acknowledged by the broker (sent, for QoS 0), the outbox included."""
        return len(self._inflight) - self._rows_out + (self.outbox.count if self.outbox is not None else 0)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every published message is sent (QoS 0) or acknowledged (QoS 1+), the outbox empty."""
        with self._idle:
            return self._idle.wait_for(lambda: self.pending == 0, timeout)

    # -- publishing ------------------------------------------------------------------------------------
    def topic(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    def publish(
        self,
        topic_suffix: str,
        payload: dict | str | int | bytes,
        *,
        retain: bool = False,
        qos: int | None = None,
        kind: str | None = None,
    ) -> bool:
        """Publish to `{prefix}/{topic_suffix}`; a dict goes out as compact JSON.

        `kind` ("events" / "detections") routes the message through the disk outbox, when there is one.
        Returns False when the message was dropped (counted in `dropped`). Other messages to a broker that
        is down wait in paho's memory queue (QoS >= 1).
        """
        if self._closed:
            log.debug("MQTT: publish to %s after close ignored", topic_suffix)
            return False
        qos = self.qos if qos is None else qos
        data = (
            payload if isinstance(payload, bytes) else (dumps(payload) if isinstance(payload, dict) else str(payload))
        )
        if kind is not None and self.outbox is not None:
            blob = data if isinstance(data, bytes) else data.encode()
            self.outbox.put(self.topic(topic_suffix), blob, kind=kind, qos=qos, retain=retain)
            with self._idle:
                self._idle.notify_all()  # wake the sender
            return True
        info = self._send(self.topic(topic_suffix), data, qos, retain, None)
        # QoS >= 1 with NO_CONN is queued (sent on connect); QoS 0 with NO_CONN is gone.
        lost = info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE or (qos == 0 and info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS)
        if lost:
            with self._idle:
                self.dropped += 1
            if not self._drop_logged:  # once per outage; `dropped` keeps the count
                self._drop_logged = True
                log.warning("MQTT: dropping messages for %s (not connected, memory queue full or QoS 0)", self._where)
        return not lost

    def _send(self, topic: str, data: str | bytes, qos: int, retain: bool, row: int | None) -> mqtt.MQTTMessageInfo:
        """Hand one message to paho and remember its mid until the broker acknowledges it."""
        # Never hold our lock across paho's publish(): paho calls on_publish holding its own lock.
        info = self._client.publish(topic, data, qos=qos, retain=retain)
        queued = info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (qos > 0 and info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN)
        if queued:
            with self._idle:
                if row is not None:
                    self._rows_out += 1
                if info.mid in self._early:  # already acknowledged
                    self._early.discard(info.mid)
                    self._acked(row)
                else:
                    self._inflight[info.mid] = row
        return info

    def _acked(self, row: int | None) -> None:
        """Caller holds the lock."""
        if row is not None:
            self._rows_out -= 1
            assert self.outbox is not None
            self.outbox.ack(row)
        self._idle.notify_all()

    def _send_outbox(self) -> None:
        """Sender thread: outbox rows to paho in id order, a bounded window at a time, only while connected."""
        assert self.outbox is not None
        while True:
            with self._idle:
                if self._resync and self._rows_out == 0:
                    self._resync = False  # everything paho held from before the outage is acknowledged
                ready = self._idle.wait_for(
                    lambda: self._closed or (self.connected and not self._resync and self._rows_out < self._window),
                    timeout=0.5,
                )
                if self._closed:
                    return
                room = self._window - self._rows_out
            if not ready:
                continue
            rows = self.outbox.after(self._last_row, room)
            if not rows:
                with self._idle:
                    self._idle.wait(0.5)  # publish() notifies when a row arrives
                continue
            for row in rows:
                self._send(row.topic, row.payload, row.qos, row.retain, row.id)
                self._last_row = row.id

    def status(self, camera: str, state: str, *, fps: float | None = None, error: str | None = None) -> None:
        """Retained `{prefix}/{camera}/status`; `since` moves only when the state changes."""
        if state not in STATES:
            raise ValueError(f"camera state must be one of {', '.join(STATES)}, not {state!r}")
        with self._lock:
            previous = self._status.get(camera)
            since = previous["since"] if previous and previous["state"] == state else round(time.time(), 3)
            payload = {
                "state": state,
                "since": since,
                "fps": None if fps is None else round(float(fps), 2),
                "error": error,
            }
            self._status[camera] = payload
        self.publish(f"{camera}/status", payload, retain=True, qos=1)

    def stats(self, payload: dict) -> None:
        """`{prefix}/stats`: periodic, so QoS 0 and not retained; a lost one is replaced by the next."""
        self.publish("stats", {**payload, "mqtt": self.metrics()}, qos=0)

    def metrics(self) -> dict:
        """Connection state, messages dropped from the memory queue, and the outbox's figures."""
        return {
            "connected": self.connected,
            "dropped": self.dropped,
            "outbox": None if self.outbox is None else self.outbox.stats(),
        }

    # -- paho callbacks (network thread) --------------------------------------------------------------
    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}"  # never the credentials

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._note_down(f"broker refused the connection ({reason})")
            return
        self._down_logged = self._drop_logged = False
        log.info("MQTT: connected to %s as %s", self._where, self.client_id)
        self.publish("available", "online", retain=True, qos=1)
        # A broker restarted without persistence has forgotten retained statuses: say them again.
        with self._lock:
            statuses = list(self._status.items())
        for camera, payload in statuses:
            self.publish(f"{camera}/status", payload, retain=True, qos=1)
        # Only now: `online` goes out before the outbox backlog, and whoever waits for the connection
        # finds `online` already in flight (wait_idle then covers it).
        self._connected.set()
        with self._idle:
            self._idle.notify_all()  # the outbox sender may go on

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._note_down("cannot connect")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()
        with self._idle:
            # paho re-sends the unacknowledged rows it holds when it reconnects; rows handed to it after the
            # reconnect but before that re-send would overtake them, so the sender waits for those acks.
            self._resync = True
            self._idle.notify_all()
        if not self._closed:
            self._note_down(f"connection lost ({reason})")

    def _note_down(self, why: str) -> None:
        self._connected.clear()
        if not self._down_logged:
            self._down_logged = True
            log.warning("MQTT: %s to broker %s; retrying in the background", why, self._where)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._idle:
            if mid in self._inflight:
                self._acked(self._inflight.pop(mid))
            else:
                self._early.add(mid)  # _send() has not recorded it yet


def _path(path: str | os.PathLike | None) -> str | None:
    return None if path is None else os.fspath(path)


def label_topic(label: str) -> str:
    """A label as one topic level: MQTT wildcards and the level separator are replaced by '_'."""
    return label.replace("/", "_").replace("+", "_").replace("#", "_")


class MqttSink(Sink):
    """Publishes one camera's detections, events, counts and snapshots, in order, on the sink's thread.

    Per frame: `{prefix}/{camera}/detections` (when `detections` is on), then each track event on
    `{prefix}/{camera}/events` (both through the publisher's disk outbox), a JPEG on
    `{prefix}/{camera}/snapshot` per `new` event (when `snapshots` is on), then the retained counts that
    changed: `{prefix}/{camera}/{label}` (in view), `{prefix}/{camera}/zones/{zone}/{label}` (in a zone) and
    `{prefix}/{camera}/lines/{line}` (crossings since start). In-view and zone counts go to 0 when the last
    one leaves, and for all when the sink closes. With tracking, only confirmed tracks (tracker_id >= 0) count.
    """

    kind = "mqtt"

    def __init__(
        self,
        camera: str,
        publisher: MqttPublisher,
        *,
        mask_format: str = "polygon",
        detections: bool = True,
        polygon_tolerance: float = 1.0,
        snapshots: SnapshotsConfig | None = None,
        queue_size: int = 64,
        block_when_full: bool = False,
    ) -> None:
        super().__init__(camera, queue_size=queue_size, block_when_full=block_when_full)
        self.publisher = publisher
        self.mask_format = mask_format
        self.detections = detections
        self.polygon_tolerance = polygon_tolerance
        self.snapshots = snapshots if snapshots is not None and snapshots.enabled else None
        self.needs_image = self.snapshots is not None  # the pipeline copies frames only for sinks that ask
        self._counts: dict[str, int] = {}  # topic suffix -> count last published (sink thread only)
        self._lines: dict[str, dict[str, Counter[str]]] = {}  # line -> direction -> label -> crossings

    def write(self, result: FrameResult) -> None:
        if self.detections and not result.final:  # a final result carries only the closing `end` events
            payload = frame_payload(
                result, self.mask_format, publish_ts=time.time(), polygon_tolerance=self.polygon_tolerance
            )
            self.publisher.publish(f"{self.camera}/detections", payload, kind="detections")
        for event in result.events:
            self.publisher.publish(f"{self.camera}/events", event.to_dict(), kind="events")
            if self.snapshots is not None and event.type == "new" and result.image is not None:
                jpeg = snapshot_jpeg(result.image, event.after.get("box"), self.snapshots)
                self.publisher.publish(f"{self.camera}/snapshot", jpeg, retain=True)
        if not result.final:
            self._publish_counts({**label_counts(result), **zone_counts(result)})
            self._publish_lines(result)

    def close(self) -> None:
        self._publish_counts({})  # the camera is gone: nothing of it is in view any more

    def _publish_counts(self, counts: dict[str, int]) -> None:
        """counts: topic suffix under the camera -> count now; publishes the ones that changed."""
        for suffix in sorted(self._counts.keys() | counts.keys()):
            count = counts.get(suffix, 0)
            if count != self._counts.get(suffix, 0):
                self.publisher.publish(f"{self.camera}/{suffix}", count, retain=True)
        self._counts = {k: v for k, v in counts.items() if v}

    def _publish_lines(self, result: FrameResult) -> None:
        crossings = result.detections.data.get("crossings")
        if crossings is None:
            return
        changed = set()
        for label, crossed in zip(labels_of(result.detections), crossings, strict=True):
            for line, direction in crossed:
                counts = self._lines.setdefault(line, {"in": Counter(), "out": Counter()})
                counts[direction][label] += 1
                changed.add(line)
        for line in sorted(changed):
            self.publisher.publish(f"{self.camera}/lines/{line}", line_payload(self._lines[line]), retain=True)


def line_payload(counts: dict[str, Counter[str]]) -> dict:
    """`{"in": n, "out": n, "labels": {label: {"in": n, "out": n}}}`: crossings since the daemon started."""
    labels = sorted(counts["in"].keys() | counts["out"].keys())
    return {
        "in": sum(counts["in"].values()),
        "out": sum(counts["out"].values()),
        "labels": {label: {"in": counts["in"][label], "out": counts["out"][label]} for label in labels},
    }


def zone_counts(result: FrameResult) -> dict[str, int]:
    """`zones/{zone}/{label}` -> confirmed tracks of that label in the zone now."""
    det = result.detections
    zones = det.data.get("zones")
    if zones is None or len(det) == 0:
        return {}
    counts: Counter[str] = Counter()
    for label, in_zones, ok in zip(labels_of(det), zones, _confirmed(det), strict=True):
        if ok:
            counts.update(f"zones/{zone}/{label_topic(label)}" for zone in in_zones)
    return dict(counts)


def snapshot_jpeg(image: np.ndarray, box: list[float] | None, cfg: SnapshotsConfig) -> bytes:
    """The frame as JPEG, cropped to `box` plus a margin of a quarter of its size on each side when `crop`."""
    if cfg.crop and box:
        h, w = image.shape[:2]
        x1, y1, x2, y2 = box
        mx, my = (x2 - x1) / 4, (y2 - y1) / 4
        xa, ya = max(0, int(x1 - mx)), max(0, int(y1 - my))
        xb, yb = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
        if xb > xa and yb > ya:
            image = image[ya:yb, xa:xb]
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, cfg.quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def label_counts(result: FrameResult) -> dict[str, int]:
    """`{label}` -> number in view; with tracking, only confirmed tracks count (an unconfirmed one may be noise)."""
    det = result.detections
    return dict(Counter(label_topic(label) for label, ok in zip(labels_of(det), _confirmed(det), strict=True) if ok))


def _confirmed(det: sv.Detections) -> list[bool]:
    return [True] * len(det) if det.tracker_id is None else [int(t) >= 0 for t in det.tracker_id]
