"""What the HTTP server says about the cameras: `/healthz` and `/api/cameras` (docs/http.md). Pure functions of the
running cameras, plus a small meter of the decode rate (fps in)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streamseg import report
from streamseg.health import health
from streamseg.sinks.live import LiveSink
from streamseg.sources.url import redact_url
from streamseg.vocab import CameraState

if TYPE_CHECKING:
    from streamseg.pipeline import CameraPipeline

FPS_WINDOW_S = 5.0  # fps in: decoded frames over about this many seconds


def live_sink(camera: CameraPipeline | None) -> LiveSink | None:
    if camera is None:
        return None
    return next((s for s in camera.sinks if isinstance(s, LiveSink)), None)


def healthz(
    cameras: Mapping[str, CameraPipeline], failed: Mapping[str, str], hang_timeout: float, *, started: bool = True
) -> tuple[bool, dict[str, Any]]:
    """(healthy, body): healthy when every camera streams or ended cleanly (streamseg.health); a camera that could
    not even start is not, and neither is a daemon still starting its cameras (`started` false)."""
    ok, details = health(cameras, hang_timeout=hang_timeout)
    for name, error in failed.items():
        details[name] = {"state": str(CameraState.FAILED), "healthy": False, "alive": True, "hung": None}
        details[name]["error"] = error
    ok = ok and not failed and started
    body: dict[str, Any] = {"healthy": ok, "cameras": details}
    if not started:
        body["starting"] = True
    return ok, body


class InputRate:
    """Frames decoded a second, per camera, from the source's counter sampled at each request."""

    def __init__(self) -> None:
        self._samples: dict[int, deque[tuple[float, int]]] = {}  # id(source) -> (monotonic, frames decoded)
        self._lock = threading.Lock()

    def fps(self, camera: CameraPipeline, now: float | None = None) -> float | None:
        """None on the first request for a camera (one sample is no rate)."""
        now = time.monotonic() if now is None else now
        decoded = camera.source.frames_decoded
        with self._lock:
            samples = self._samples.setdefault(id(camera.source), deque(maxlen=64))
            samples.append((now, decoded))
            while len(samples) > 2 and now - samples[1][0] >= FPS_WINDOW_S:
                samples.popleft()
            t0, n0 = samples[0]
        return round((decoded - n0) / (now - t0), 2) if now > t0 else None

    def forget(self, keep: Mapping[str, CameraPipeline]) -> None:
        alive = {id(c.source) for c in keep.values()}
        with self._lock:
            self._samples = {k: v for k, v in self._samples.items() if k in alive}


def api_cameras(
    cameras: Mapping[str, CameraPipeline],
    failed: Mapping[str, str],
    hang_timeout: float,
    rate: InputRate,
    live_fps: float,
) -> dict[str, Any]:
    """`/api/cameras`: per camera its state, rates, drops, latency, counts and last events."""
    _, details = health(cameras, hang_timeout=hang_timeout)
    out: dict[str, Any] = {}
    for name, camera in cameras.items():
        live = live_sink(camera)
        out[name] = {
            **report.camera_stats(camera),
            "healthy": details[name]["healthy"],
            "hung": details[name]["hung"],
            "source": redact_url(camera.cfg.source.url),
            "source_fps": camera.source.source_fps,
            "fps_in": rate.fps(camera),
            "zones": list(camera.cfg.zones),
            "lines": list(camera.cfg.lines),
            "live": live.view() if live is not None else None,
        }
    for name, error in failed.items():
        out[name] = {"state": str(CameraState.FAILED), "error": error, "healthy": False, "live": None}
    rate.forget(cameras)
    return {"ts": round(time.time(), 3), "live_fps": live_fps, "cameras": out}
