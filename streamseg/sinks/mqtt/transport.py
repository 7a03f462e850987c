"""The MQTT transport: the paho client factory (shared with `streamseg tail`), and the process's one publisher
with its disk outbox sender, size limits and poison-message protection."""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from streamseg.config.mqtt import topic_problem
from streamseg.sinks.mqtt.topics import shrink
from streamseg.sinks.outbox import Outbox, Throttle, kinds_text
from streamseg.sinks.serialize import dumps
from streamseg.vocab import CameraState

if TYPE_CHECKING:
    from streamseg.config.mqtt import MqttConfig

log = logging.getLogger(__name__)


def _not_a_real_error(record: logging.LogRecord) -> bool:
    # paho logs "Client is not connected" at ERROR when its thread stops before any connection succeeded
    return not record.getMessage().startswith("Client is not connected")


_paho_log = logging.getLogger(f"{__name__}.paho")
_paho_log.addFilter(_not_a_real_error)

PROTOCOLS = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576  # EMQX's default limit; mosquitto has none
STRIKES = 3  # connections lost in a row with the same message first in line, unacknowledged: it is set aside
# Messages not delivered as published, by why; counted in metrics() (and {prefix}/stats), logged once per burst.
LOSSES = ("degraded", "too_large", "rejected", "set_aside")
_TAKEN_BACK = object()  # in `_early`: a message taken back from paho before _send() recorded its mid


def make_client(
    *,
    protocol: str = "3.1.1",
    client_id: str = "",
    username: str | None = None,
    password: str | None = None,
    tls: bool = False,
    ca: str | os.PathLike | None = None,
    cert: str | os.PathLike | None = None,
    key: str | os.PathLike | None = None,
    insecure: bool = False,
) -> mqtt.Client:
    """A paho client set up from streamseg's MQTT settings: protocol, credentials, TLS (tls=True alone: the
    system CAs). Its log goes to streamseg's logger; credentials are never logged."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"MQTT protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=PROTOCOLS[protocol]
    )
    client.enable_logger(_paho_log)
    if username is not None:
        client.username_pw_set(username, password)
    if tls or ca or cert or key:
        client.tls_set(ca_certs=_path(ca), certfile=_path(cert), keyfile=_path(key))
        client.tls_insecure_set(insecure)
    return client


def client_settings(cfg: MqttConfig) -> dict[str, Any]:
    """make_client's keyword arguments from the config's `mqtt:` section (reads password_file)."""
    tls = cfg.tls
    return {
        "protocol": cfg.protocol,
        "username": cfg.username,
        "password": cfg.read_password(),
        "tls": tls is not None,
        "ca": tls.ca if tls else None,
        "cert": tls.cert if tls else None,
        "key": tls.key if tls else None,
        "insecure": tls.insecure if tls else False,
    }


class MqttPublisher:
    """The process's one MQTT client: availability, camera status, stats, and publishing for the sinks.

    The constructor starts connecting (unless `autostart=False`; then call `start()`) and returns at once
    even when the broker is down: paho's network thread keeps retrying (1 s doubling to 30 s). Messages
    published with a `kind` (events, detections) go to the disk `outbox` when there is one, and a sender
    thread hands them to paho in order, at most `outbox_window` unacknowledged at a time; a row leaves the
    outbox when the broker acknowledged it. Other messages (and all of them without an outbox) wait in paho's
    memory queue while the broker is down (QoS >= 1 only, at most `max_queued`; the rest are counted in
    `dropped`). Thread-safe: every sink publishes from its own thread. Credentials are never logged.

    No poison message: one message the broker cannot take never blocks the ones behind it. Nothing larger
    than `max_message_bytes` (or, MQTT 5, the broker's Maximum Packet Size) reaches paho: detections lose
    their masks and events their older line crossings first (`shrink`), what still does not fit is dropped.
    A message paho refuses (bad topic) or the broker answers with a failure code (MQTT 5 PUBACK) is dropped,
    not retried. And a message still first in line, unacknowledged, after STRIKES lost connections in a row
    (a broker limit we could not know) is set aside. Each is counted in `metrics()` and logged once a burst.
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
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        outbox: Outbox | None = None,
        outbox_window: int = 100,
        autostart: bool = True,
    ) -> None:
        self.host, self.port = host, port
        self.prefix = topic_prefix.rstrip("/")
        self.qos = qos
        self.client_id = client_id or f"streamseg-{socket.gethostname()}-{os.getpid()}"
        self.keepalive = keepalive
        self.dropped = 0  # messages paho refused (queue full, or QoS 0 while disconnected)
        self.counts: Counter[str] = Counter()  # LOSSES -> messages
        self.unsent = 0  # messages still in paho's memory queue when close() gave up waiting (lost)
        self._v5 = protocol == "5"
        self._max_bytes = max_message_bytes
        self._broker_max: int | None = None  # MQTT 5: the broker's Maximum Packet Size, from CONNACK

        self.outbox = outbox
        self._window = outbox_window
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified on acks, new outbox rows, (dis)connection
        self._inflight: dict[int, tuple[int | None, str]] = {}  # paho mid -> (outbox row id or None, topic)
        self._early: dict[int, Any] = {}  # mid -> PUBACK reason, for acks that came before publish() returned
        self._rows_out = 0  # outbox rows handed to paho and not yet acknowledged
        self._last_row = 0  # highest outbox row id handed to paho
        self._resync = False  # after a connection loss: paho re-sends the rows it holds before we add more
        self._suspect: int | None = None  # mid first in line when the connection was lost, and how many times
        self._strikes = 0
        self._sender: threading.Thread | None = None
        self._connected = threading.Event()
        self._down_logged = False  # one warning per outage, not one per retry
        self._drop_logged = False
        self._count_lock = threading.Lock()
        self._throttles = {loss: Throttle() for loss in (*LOSSES, "sender")}
        self._status: dict[str, dict[str, Any]] = {}  # camera -> last status payload
        self._subscriptions: dict[str, Callable[[str, bytes], None]] = {}  # topic filter -> on_message
        self._started = self._closed = False

        self._client = make_client(
            protocol=protocol,
            client_id=self.client_id,
            username=username,
            password=password,
            tls=tls,
            ca=tls_ca,
            cert=tls_cert,
            key=tls_key,
            insecure=tls_insecure,
        )
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

    @classmethod
    def from_config(cls, cfg: MqttConfig) -> MqttPublisher:
        """The publisher for the config's `mqtt:` section, with its disk outbox, connecting in the background.

        Raises StreamsegError (one line, naming the file) when the outbox or the password file cannot be read.
        """
        from streamseg.errors import StreamsegError
        from streamseg.sinks.outbox import default_path

        outbox = None
        if cfg.outbox.enabled:
            ob = cfg.outbox
            outbox = Outbox(
                ob.path or default_path(cfg.topic_prefix),
                max_messages=ob.max_messages,
                max_bytes=int(ob.max_mb * 2**20),
                policy=ob.policy,
            )
        try:
            settings = client_settings(cfg)
        except OSError as exc:
            if outbox is not None:
                outbox.close()
            raise StreamsegError(f"mqtt.password_file: cannot read {cfg.password_file}: {exc.strerror}") from None
        return cls(
            cfg.host,
            cfg.port,
            topic_prefix=cfg.topic_prefix,
            qos=cfg.qos,
            username=settings["username"],
            password=settings["password"],
            client_id=cfg.client_id,
            keepalive=cfg.keepalive,
            protocol=cfg.protocol,
            tls=settings["tls"],
            tls_ca=settings["ca"],
            tls_cert=settings["cert"],
            tls_key=settings["key"],
            tls_insecure=settings["insecure"],
            max_message_bytes=cfg.max_message_bytes,
            outbox=outbox,
        )

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

    @property
    def max_message_bytes(self) -> int:
        """The largest PUBLISH packet sent: the setting, or the broker's Maximum Packet Size when smaller."""
        return min(self._max_bytes, self._broker_max or self._max_bytes)

    def close(self, timeout: float = 5.0) -> None:
        """Mark every camera `stopped` and the daemon `offline`, wait (bounded) for delivery, disconnect.

        A camera whose last state is `failed` keeps it, and its error. What the outbox still holds then (the
        broker is down) stays on disk for the next start; `summary()` says what was lost and what is left.
        """
        if self._closed:
            return
        deadline = time.monotonic() + timeout
        if self._started and self.outbox is not None:
            self.wait_idle(timeout)  # events before `stopped` / `offline`, when the broker is there
        for camera, payload in list(self._status.items()):
            if payload["state"] != CameraState.FAILED:  # `failed` says why the camera is gone: keep it retained
                self.status(camera, "stopped")
        self.publish("available", "offline", retain=True, qos=1)
        self._closed = True
        if self._started:
            if not self.wait_idle(max(0.0, deadline - time.monotonic())):
                log.warning("MQTT: closing with %d message(s) not delivered to %s", self.pending, self._where)
            with self._idle:
                self.unsent = len(self._inflight) - self._rows_out  # paho's memory queue dies with the client
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
        Returns False when the message was dropped (counted in `dropped`, or in `counts` when it is too
        large or its topic invalid). Other messages to a broker that is down wait in paho's memory queue
        (QoS >= 1).
        """
        return self.publish_topic(self.topic(topic_suffix), payload, retain=retain, qos=qos, kind=kind)

    def publish_topic(
        self,
        topic: str,
        payload: dict | str | int | bytes,
        *,
        retain: bool = False,
        qos: int | None = None,
        kind: str | None = None,
    ) -> bool:
        """`publish` to a whole topic, outside `{prefix}` (Home Assistant's discovery topics)."""
        if self._closed:
            log.debug("MQTT: publish to %s after close ignored", topic)
            return False
        qos = self.qos if qos is None else qos
        if isinstance(payload, bytes):
            data = payload
        else:
            data = (dumps(payload) if isinstance(payload, dict) else str(payload)).encode()
        data = self._fit(topic, data, qos, kind)  # here too: what can never be sent takes no room on disk
        if data is None:
            return False
        if kind is not None and self.outbox is not None:
            self.outbox.put(topic, data, kind=kind, qos=qos, retain=retain)
            with self._idle:
                self._idle.notify_all()  # wake the sender
            return True
        info = self._send(topic, data, qos, retain, None)
        if info is None:
            return False
        # QoS >= 1 with NO_CONN is queued (sent on connect); QoS 0 with NO_CONN is gone.
        lost = info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE or (qos == 0 and info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS)
        if lost:
            with self._idle:
                self.dropped += 1
            if not self._drop_logged:  # once per outage; `dropped` keeps the count
                self._drop_logged = True
                log.warning("MQTT: dropping messages for %s (not connected, memory queue full or QoS 0)", self._where)
        return not lost

    def _fit(self, topic: str, data: bytes, qos: int, kind: str | None) -> bytes | None:
        """`data` as it can go to the broker: as it is, or shrunk (see `shrink`); None: dropped and counted."""
        limit = self.max_message_bytes
        size = packet_size(topic, len(data), qos, v5=self._v5)
        if size <= limit:
            return data
        why = f"over the {limit}-byte limit ({self._limit_source})"
        shrunk = shrink(kind, data)
        if shrunk is not None:
            smaller, what = shrunk
            if packet_size(topic, len(smaller), qos, v5=self._v5) <= limit:
                msg = "MQTT: a %d-byte message to %s is %s: sent without its %s"
                self._count("degraded", msg, size, topic, why, what)
                return smaller
            why += f", still {len(smaller)} bytes without its {what}"
        self._count("too_large", "MQTT: a %d-byte message to %s is dropped: %s", size, topic, why)
        return None

    @property
    def _limit_source(self) -> str:
        if self._broker_max is not None and self._broker_max < self._max_bytes:
            return "the broker's Maximum Packet Size"
        return "mqtt.max_message_bytes"

    def _count(self, loss: str, msg: str, *args: Any) -> None:
        """Count a message not delivered as published, and log it: the first of a burst, then once a minute."""
        with self._count_lock:
            self.counts[loss] += 1
        held = self._throttles[loss].allow()
        if held is not None:
            more = f" ({held} more since the last such warning)" if held else ""
            log.warning(msg + "%s; counted in stats as mqtt.%s", *args, more, loss)

    def _send(self, topic: str, data: bytes, qos: int, retain: bool, row: int | None) -> mqtt.MQTTMessageInfo | None:
        """Hand one message to paho and remember its mid until the broker acknowledges it.

        None: the topic can never be published to (a wildcard, a NUL, too long), so the message is dropped
        (a row leaves the outbox) and counted rather than offered to a broker that would drop the connection.
        """
        problem = _topic_problem(topic)
        if problem is None:
            try:
                # Never hold our lock across paho's publish(): paho calls on_publish holding its own lock.
                info = self._client.publish(topic, data, qos=qos, retain=retain)
            except ValueError as exc:  # paho's own checks (topic or payload too long, wildcards)
                problem = str(exc)
        if problem is not None:
            self._give_up(row, "rejected", "MQTT: cannot publish to %r: the topic %s; dropped", topic, problem)
            return None
        queued = info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (qos > 0 and info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN)
        if queued:
            with self._idle:
                if row is not None:
                    self._rows_out += 1
                if info.mid in self._early:  # already acknowledged
                    self._settle(row, topic, self._early.pop(info.mid))
                else:
                    self._inflight[info.mid] = (row, topic)
        return info

    def _give_up(self, row: int | None, loss: str, msg: str, *args: Any) -> None:
        """A message that will never be delivered: out of the outbox, counted, logged (once a burst)."""
        if row is not None:
            assert self.outbox is not None
            self.outbox.remove(row)
            with self._idle:
                self._idle.notify_all()
        self._count(loss, msg, *args)

    def _settle(self, row: int | None, topic: str, reason: Any) -> None:
        """The broker answered a message (caller holds the lock); either way it is not sent again."""
        if row is not None:
            self._rows_out -= 1
        if reason is _TAKEN_BACK:  # already counted
            if row is not None:
                assert self.outbox is not None
                self.outbox.remove(row)
        elif getattr(reason, "is_failure", False):  # MQTT 5: a PUBACK with a reason code >= 0x80
            if row is not None:
                assert self.outbox is not None
                self.outbox.remove(row)
            self._count("rejected", "MQTT: the broker refused a message to %s: %s; not retried", topic, reason)
        elif row is not None:
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
            try:
                rows = self.outbox.after(self._last_row, room)
            except Exception as exc:  # the disk: the sender must outlive it, and try again
                if self._throttles["sender"].allow() is not None:
                    log.error("MQTT: cannot read the outbox %s: %s; retrying", self.outbox.path, exc)
                rows = None
            if not rows:
                with self._idle:
                    self._idle.wait(0.5 if rows is not None else 1.0)  # publish() notifies when a row arrives
                continue
            for row in rows:
                self._last_row = row.id  # first: a row that fails below is not tried again
                try:
                    data = self._fit(row.topic, row.payload, row.qos, row.kind)  # the broker's limit may be new
                    if data is None:
                        self.outbox.remove(row.id)
                    else:
                        self._send(row.topic, data, row.qos, row.retain, row.id)
                except Exception as exc:  # never let one message end the sender: the rest must flow
                    self._give_up(row.id, "rejected", "MQTT: cannot publish to %r: %r; dropped", row.topic, exc)

    def subscribe(self, topic: str, on_message: Callable[[str, bytes], None]) -> None:
        """Call `on_message(topic, payload)` (on paho's network thread) for each message on the `topic` filter,
        subscribed again on every reconnection (QoS 1)."""

        def deliver(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            try:
                on_message(message.topic, message.payload)
            except Exception:  # a broken handler must not take paho's network thread down
                log.exception("MQTT: handling a message on %s failed", message.topic)

        self._subscriptions[topic] = on_message
        self._client.message_callback_add(topic, deliver)
        self._client.subscribe(topic, qos=1)  # not connected: refused here, made by _on_connect

    def unsubscribe(self, topic: str) -> None:
        self._subscriptions.pop(topic, None)
        self._client.message_callback_remove(topic)
        self._client.unsubscribe(topic)

    def forget(self, camera: str, suffixes: Iterable[str] = ()) -> None:
        """A camera removed from the config: clear its retained status and the retained `{camera}/{suffix}`
        topics (counts, lines, snapshot), so that subscribers no longer see it; it is not `stopped` at close."""
        with self._lock:
            self._status.pop(camera, None)
        for suffix in ["status", *suffixes]:
            self.publish(f"{camera}/{suffix}", b"", retain=True, qos=1)

    def status(self, camera: str, state: str, *, fps: float | None = None, error: str | None = None) -> None:
        """Retained `{prefix}/{camera}/status`; `since` moves only when the state changes."""
        state = CameraState(state)  # ValueError for a word that is not a state
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
        """Connection state, messages lost or shrunk (by why), the size limit in force, the outbox's figures."""
        with self._count_lock:
            counts = {loss: self.counts[loss] for loss in LOSSES}
        return {
            "connected": self.connected,
            "dropped": self.dropped,
            **counts,
            "max_message_bytes": self.max_message_bytes,
            "outbox": None if self.outbox is None else self.outbox.stats(),
        }

    def summary(self) -> str:
        """One line for the final log summary: what was delivered, lost and why, and left for the next start.

        Written for the case the last `{prefix}/stats` cannot tell: the broker is down at shutdown.
        """
        ob = self.outbox
        parts = [] if ob is None else [f"{ob.acked} delivered from the outbox"]
        lost = []
        if ob is not None and sum(ob.dropped.values()):
            lost.append(f"{kinds_text(ob.dropped)} dropped (outbox full)")
        if self.dropped:
            lost.append(f"{self.dropped} dropped from the memory queue (full, or QoS 0 while disconnected)")
        if self.counts["too_large"]:
            lost.append(f"{self.counts['too_large']} too large for the broker")
        if self.counts["rejected"]:
            lost.append(f"{self.counts['rejected']} refused (by the broker, or an invalid topic)")
        if self.counts["set_aside"]:
            lost.append(f"{self.counts['set_aside']} set aside (the broker dropped the connection on them)")
        if self.unsent:
            lost.append(f"{self.unsent} not sent from the memory queue at shutdown")
        parts.append("lost: " + ", ".join(lost) if lost else "nothing lost")
        if self.counts["degraded"]:
            parts.append(f"{self.counts['degraded']} sent shrunk to fit the size limit")
        if ob is not None and ob.count:
            parts.append(f"{ob.count} left in the outbox {ob.path} for the next start")
        return "; ".join(parts)

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
        broker_max = getattr(properties, "MaximumPacketSize", None)  # MQTT 5 CONNACK; absent: no limit
        if broker_max != self._broker_max and broker_max is not None and broker_max < self._max_bytes:
            log.info("MQTT: the broker takes messages of at most %d bytes (its Maximum Packet Size)", broker_max)
        self._broker_max = broker_max
        self._take_back_poison()
        self.publish("available", "online", retain=True, qos=1)
        # A broker restarted without persistence has forgotten retained statuses: say them again.
        with self._lock:
            statuses = list(self._status.items())
        for camera, payload in statuses:
            self.publish(f"{camera}/status", payload, retain=True, qos=1)
        for topic in list(self._subscriptions):
            client.subscribe(topic, qos=1)
        # Only now: `online` goes out before the outbox backlog, and whoever waits for the connection
        # finds `online` already in flight (wait_idle then covers it).
        self._connected.set()
        with self._idle:
            self._idle.notify_all()  # the outbox sender may go on

    def _take_back_poison(self) -> None:
        """Before paho re-sends what the last connection left unacknowledged (right after on_connect), take
        back what the broker will not take: messages over its limit, and the message that was first in
        line, sent and unacknowledged (`dup`), at STRIKES lost connections in a row: a broker that drops the
        connection on a message (too large for a limit MQTT 3.1.1 cannot tell us, say) would otherwise get it
        first after every reconnect, forever, and nothing behind it would ever be delivered.

        paho has no public call to take a queued message back: its queue is `_out_messages` (mid ->
        MQTTMessage, oldest first) under `_out_message_mutex`; tests/sinks/test_mqtt_limits.py covers this.
        """
        client = self._client
        limit = self.max_message_bytes
        victims = []
        with client._out_message_mutex:
            queue = client._out_messages
            first = next(iter(queue.values()), None)
            if first is None or not first.dup:
                self._suspect, self._strikes = None, 0
            elif first.mid == self._suspect:
                self._strikes += 1
            else:
                self._suspect, self._strikes = first.mid, 1
            if first is not None and self._strikes >= STRIKES:
                victims.append((queue.pop(first.mid), "set_aside"))
                self._suspect, self._strikes = None, 0
            for message in list(queue.values()):  # queued before the broker said its limit
                if packet_size(message.topic, len(message.payload), message.qos, v5=self._v5) > limit:
                    victims.append((queue.pop(message.mid), "too_large"))
        for message, loss in victims:
            with self._idle:
                if message.mid in self._inflight:
                    self._settle(*self._inflight.pop(message.mid), _TAKEN_BACK)
                else:  # published this instant, _send() not done with it yet: it settles it
                    self._early[message.mid] = _TAKEN_BACK
            topic = message.topic
            size = packet_size(topic, len(message.payload), message.qos, v5=self._v5)
            if loss == "set_aside":
                self._count(
                    loss,
                    "MQTT: set aside a %d-byte message to %s: the broker dropped the connection %d times in a row "
                    "with it first in line (a limit of the broker's? see mqtt.max_message_bytes)",
                    size,
                    topic,
                    STRIKES,
                )
            else:
                why = f"over the {limit}-byte limit ({self._limit_source})"
                self._count(loss, "MQTT: a %d-byte message to %s is dropped: %s", size, topic, why)

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
            entry = self._inflight.pop(mid, None)
            if entry is None:
                self._early[mid] = reason  # _send() has not recorded it yet
            else:
                self._settle(*entry, reason)


def packet_size(topic: str, payload_bytes: int, qos: int, *, v5: bool) -> int:
    """Bytes of a PUBLISH packet on the wire, which is what a broker's maximum packet size limits."""
    # topic length + topic, packet id (QoS > 0), MQTT 5's empty property list, payload; then the fixed header
    remaining = 2 + len(topic.encode(errors="replace")) + (2 if qos else 0) + (1 if v5 else 0) + payload_bytes
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16_384 else 3 if remaining < 2_097_152 else 4
    return 1 + length_bytes + remaining


@functools.lru_cache(maxsize=4096)
def _topic_problem(topic: str) -> str | None:
    """`topic_problem` once per topic: topics repeat for every frame."""
    return topic_problem(topic)


def _path(path: str | os.PathLike | None) -> str | None:
    return None if path is None else os.fspath(path)
