"""Is the daemon healthy? One pure function over the running cameras, for the systemd watchdog and health checks.

Two questions, answered per camera:
- `alive`: nothing of the camera is hung. Its worker got round its loop within `hang_timeout` seconds (a worker
  waiting for a frame, or for an inference server to come back, still beats), and none of its outputs has spent
  longer than that in one write (a stuck network mount, a pipe nobody reads; the RTSP output excepted: its
  writes are bounded by its own timeout and it drops frames meanwhile, see sinks/rtsp.py). Only a restart
  recovers a thread stuck in a call, so the systemd watchdog pings stop while any camera is not alive.
- `healthy`: alive, and streaming or ended cleanly (a file that reached its end). A camera that is starting,
  reconnecting, degraded (an output failing) or failed is not healthy, but it is alive: restarting the daemon
  would not bring a camera back and would interrupt the others, so that alone never stops the watchdog.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streamseg.vocab import CameraState

if TYPE_CHECKING:
    from streamseg.pipeline import CameraPipeline

HANG_TIMEOUT_S = 30.0  # the default of the config's `hang_timeout`


def health(
    cameras: Mapping[str, CameraPipeline], *, hang_timeout: float = HANG_TIMEOUT_S, now: float | None = None
) -> tuple[bool, dict[str, dict[str, Any]]]:
    """(every camera healthy, per camera `{"state", "healthy", "alive", "hung", "error", "fps", "frames"}`).

    `hung` says what is stuck and for how long (`worker: no progress for 42 s`), None when nothing is.
    """
    now = time.monotonic() if now is None else now
    details = {name: _camera(c, hang_timeout, now) for name, c in cameras.items()}
    return all(d["healthy"] for d in details.values()), details


def _camera(c: CameraPipeline, hang_timeout: float, now: float) -> dict[str, Any]:
    state = CameraState(c.state)
    hung = None
    if c.done:
        if not state.final:  # the worker always ends through _finish, which sets the final state
            hung = "worker: thread ended without a final state"
    elif c.heartbeat is not None and now - c.heartbeat > hang_timeout:
        hung = f"worker: no progress for {now - c.heartbeat:.0f} s"
    for sink in c.sinks:
        since = sink.busy_since
        if hung is None and sink.watchdog and since is not None and now - since > hang_timeout:
            hung = f"{sink.target}: one write running for {now - since:.0f} s"
    ended_cleanly = state == CameraState.STOPPED and c.error is None
    return {
        "state": str(state),
        "healthy": hung is None and (state == CameraState.STREAMING or ended_cleanly),
        "alive": hung is None,
        "hung": hung,
        "error": c.status_error,
        "fps": round(c.stats.fps, 2),
        "frames": c.stats.frames,
    }


def summary(details: Mapping[str, Mapping[str, Any]]) -> str:
    """One line for `systemctl status` (sd_notify STATUS=): `2/3 cameras streaming, 24.5 fps; front: reconnecting`."""
    if not details:
        return "no cameras running"
    streaming = [n for n, d in details.items() if d["state"] == CameraState.STREAMING]
    fps = sum(d["fps"] for d in details.values())
    line = f"{len(streaming)}/{len(details)} cameras streaming, {fps:.1f} fps"
    others = [
        f"{name}: {'hung (' + d['hung'] + ')' if d['hung'] else d['state']}"
        for name, d in details.items()
        if d["hung"] or d["state"] != CameraState.STREAMING
    ]
    return "; ".join([line, *others])
