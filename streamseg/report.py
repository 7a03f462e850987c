"""What the daemon tells people and machines about its cameras: the stats payload, the progress line, the summary."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streamseg.vocab import CameraState

if TYPE_CHECKING:
    from streamseg.inference.stage import InferenceStage
    from streamseg.pipeline import CameraPipeline

log = logging.getLogger(__name__)


def camera_stats(c: CameraPipeline) -> dict[str, Any]:
    """One camera's entry in `{prefix}/stats` (docs/mqtt.md, schema stats.json)."""
    return {
        "state": c.state,
        "error": c.status_error,
        "fps": round(c.stats.fps, 2),
        "wanted_fps": round(c.wanted_fps, 2),
        "gated_fps": round(c.stats.gated_fps, 2),
        "frames": c.stats.frames,
        "gated": c.stats.gated,
        "dropped": c.dropped,
        "skipped": c.source.frames_skipped,
        "bad_packets": c.source.bad_packets,
        "reconnects": c.reconnects,
        "inference_ms": round(c.times.ms("infer"), 2),
        "latency_ms": round(1000 * c.stats.latency_s, 1),
        "queues": {"ring": c.ring.depth, "inference": c.stage.queued_for(c.name), **{s.kind: s.depth for s in c.sinks}},
        "sink_dropped": {s.kind: s.dropped for s in c.sinks},
        "sinks": {s.kind: s.stats() for s in c.sinks},
    }


def stage_stats(stage: InferenceStage) -> dict[str, Any]:
    """One inference stage: how busy its workers are and how well it batches."""
    s = stage.stats
    return {
        "model": stage.name,
        "engine": stage.engine_name,
        "workers": stage.workers,
        "batch_size": stage.batch_size,
        "frames": s.frames,
        "calls": s.calls,
        "mean_batch": round(s.frames / s.calls, 2) if s.calls else 0.0,
        "queued": stage.queued,
    }


def stats(
    cameras: Mapping[str, CameraPipeline], failed: Mapping[str, str], stages: list[InferenceStage]
) -> dict[str, Any]:
    out = {name: camera_stats(c) for name, c in cameras.items()}
    for name, error in failed.items():
        out[name] = {"state": CameraState.FAILED, "error": error}
    return {"ts": round(time.time(), 3), "cameras": out, "inference": [stage_stats(s) for s in stages]}


def log_stats(payload: dict[str, Any]) -> None:
    for name, s in payload["cameras"].items():
        if "fps" in s:
            log.info(
                "camera %r: %s, %d frames, %.1f fps (wants %.1f), infer %.1f ms, gated %d, dropped %d",
                name,
                s["state"],
                s["frames"],
                s["fps"],
                s["wanted_fps"],
                s["inference_ms"],
                s["gated"],
                s["dropped"],
            )


def progress_line(cameras: Mapping[str, CameraPipeline]) -> None:
    """One line on a terminal, rewritten in place while the daemon runs."""
    parts = [
        f"{name}: {c.stats.frames} frames {c.stats.fps:.1f} fps {c.stats.tracks_in_view} tracks"
        for name, c in cameras.items()
    ]
    sys.stderr.write("\r" + " | ".join(parts) + "\033[K")
    sys.stderr.flush()


def summary(
    cameras: Mapping[str, CameraPipeline], failed: Mapping[str, str], elapsed: float, mqtt: str | None = None
) -> None:
    """The last log lines: per camera what it did and wrote, what failed to start, what MQTT delivered."""
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    for name, c in cameras.items():
        # Only files that got data, under the name actually written (a video never overwrites: bikes-1.mp4).
        wrote = [str(path) for sink in c.sinks for path in sink.outputs()]
        lost = [f"{s.target} dropped {s.dropped}" for s in c.sinks if s.dropped]
        log.info(
            "summary %r: %s, %d frames in %.1f s (%.1f fps), %d detections, %d events, %d gated, %d dropped%s%s%s",
            name,
            c.state,
            c.stats.frames,
            elapsed,
            c.stats.frames / elapsed if elapsed > 0 else 0.0,
            c.stats.detections,
            c.stats.events,
            c.stats.gated,
            c.dropped,
            f", error: {c.error}" if c.error else "",
            f", wrote {', '.join(wrote)}" if wrote else "",
            "".join(f", {text}" for text in lost),
        )
    for name, error in failed.items():
        log.info("summary %r: failed to start: %s", name, error)
    if mqtt is not None:  # the last stats message is lost when the broker is down: say it here
        log.info("summary mqtt: %s", mqtt)
