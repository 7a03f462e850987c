"""`streamseg tail`: print track events from the broker, one line each, for operators.

2024-05-01 12:00:03.120  front  new     #7    car         0.87  zones=driveway
2024-05-01 12:00:05.402  front  update  #7    car         0.91  zones=driveway,street  crossed=gate:in
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime
from typing import Any, TextIO

import paho.mqtt.client as mqtt

from streamseg.sinks.mqtt import make_client


def format_event(event: dict[str, Any]) -> str:
    """One readable line: local time, camera, type, track id, label, score, zones (and new line crossings)."""
    after = event.get("after") or {}
    before = event.get("before") or {}
    ts = event.get("ts") or after.get("last_seen") or 0
    when = datetime.fromtimestamp(float(ts)).isoformat(sep=" ", timespec="milliseconds")
    score = after.get("score")
    parts = [
        when,
        str(event.get("camera", "?")),
        f"{event.get('type', '?'):<6}",
        f"#{event.get('track_id', '?'):<4}",
        f"{event.get('label', '?'):<10}",
        f"{score:.2f}" if isinstance(score, (int, float)) else "   -",
        "zones=" + (",".join(event.get("zones") or []) or "-"),
    ]
    crossed = (after.get("crossings") or [])[len(before.get("crossings") or []) :]
    if crossed:
        parts.append("crossed=" + ",".join(f"{c['line']}:{c['direction']}" for c in crossed))
    return "  ".join(parts)


class Tail:
    """Subscribes to `{prefix}/{camera}/events` (every camera with camera=None) and prints each event."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        prefix: str = "streamseg",
        camera: str | None = None,
        out: TextIO = sys.stdout,
        limit: int = 0,
        **client: Any,
    ) -> None:
        """`client`: make_client's settings (protocol, username, password, tls, ca, cert, key, insecure)."""
        self.topic = f"{prefix.rstrip('/')}/{camera or '+'}/events"
        self.out = out
        self.limit = limit
        self.printed = 0
        self.done = threading.Event()
        self.error: str | None = None
        self._client = make_client(**client)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.connect_async(host, port)
        self._client.reconnect_delay_set(1, 30)

    def run(self) -> int:
        self._client.loop_start()
        try:
            while not self.done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self._client.disconnect()
            self._client.loop_stop()
        if self.error:
            print(f"streamseg tail: {self.error}", file=sys.stderr)
            return 1
        return 0

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.error = f"broker refused the connection ({reason})"
            self.done.set()
            return
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            line = format_event(json.loads(msg.payload))
        except (ValueError, TypeError, KeyError) as exc:
            line = f"{msg.topic}: unreadable event ({exc})"
        print(line, file=self.out, flush=True)
        self.printed += 1
        if self.limit and self.printed >= self.limit:
            self.done.set()
