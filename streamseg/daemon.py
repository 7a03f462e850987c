"""`streamseg run`: start every camera, report progress and stats, drain cleanly on SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from streamseg.config.app import AppConfig
from streamseg.config.camera import CameraConfig
from streamseg.config.model import ModelConfig
from streamseg.engines import create_engine
from streamseg.engines.base import Engine
from streamseg.errors import StreamsegError
from streamseg.models.registry import resolve_model
from streamseg.models.yolo import YoloModel
from streamseg.pipeline import CameraPipeline
from streamseg.redaction import SecretFilter
from streamseg.sinks.base import Sink

log = logging.getLogger(__name__)


class EnginePool:
    """Cameras that use the same model file with the same runtime settings share one engine."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self._engines: dict[tuple, Engine] = {}

    def model(self, cfg: ModelConfig) -> YoloModel:
        path = resolve_model(cfg.path, self.base_dir)
        key = (path, cfg.backend, tuple(cfg.providers or ()), cfg.threads)
        if key not in self._engines:
            self._engines[key] = create_engine(path, backend=cfg.backend, providers=cfg.providers, threads=cfg.threads)
        engine = self._engines[key]
        return YoloModel(
            engine,
            conf=cfg.conf,
            iou=cfg.iou,
            max_det=cfg.max_det,
            agnostic_nms=cfg.agnostic_nms,
            classes=class_ids(cfg.classes, engine.info.names, path),
        )

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()


def class_ids(classes: list[str | int] | None, names: dict[int, str], model: Path) -> list[int] | None:
    """Map the config's labels or ids to class ids, refusing ones the model does not have."""
    if classes is None:
        return None
    by_label = {label: cid for cid, label in names.items()}
    ids = []
    for c in classes:
        cid = by_label.get(c) if isinstance(c, str) else c
        if cid is None or cid not in names:
            raise StreamsegError(f"model.classes: {c!r} is not a class of {model.name}")
        ids.append(cid)
    return ids


def build_sinks(name: str, cfg: CameraConfig, publisher: Any | None, mqtt_detections: bool) -> list[Sink]:
    from streamseg.sinks.jsonl import JsonlSink

    # Files are batch jobs: sinks wait rather than drop, so the outputs hold every frame (but a failing sink is
    # not waited for: see Sink).
    block = cfg.source.policy == "block"
    sinks: list[Sink] = []
    if cfg.outputs.jsonl is not None:
        sinks.append(
            JsonlSink(
                name,
                cfg.outputs.jsonl.path,
                mask_format=cfg.mask_format,
                polygon_tolerance=cfg.polygon_tolerance,
                block_when_full=block,
            )
        )
    if cfg.outputs.video is not None:
        from streamseg.sinks.video import VideoSink

        video = cfg.outputs.video
        sinks.append(
            VideoSink(
                name,
                video.path,
                crf=video.crf,
                preset=video.preset,
                zones=cfg.zones,
                lines=cfg.lines,
                block_when_full=block,
            )
        )
    if publisher is not None:
        from streamseg.sinks.mqtt import MqttSink

        mqtt = MqttSink(
            name,
            publisher,
            mask_format=cfg.mask_format,
            detections=mqtt_detections,
            polygon_tolerance=cfg.polygon_tolerance,
            snapshots=cfg.snapshots,
            block_when_full=block,
        )
        outbox = getattr(publisher, "outbox", None)
        if outbox is not None:  # what fails there is the outbox file (full disk): say which
            mqtt.label = f"mqtt output (outbox {outbox.path})"
        sinks.append(mqtt)
    return sinks


class Daemon:
    def __init__(self, config: AppConfig, config_path: Path) -> None:
        self.config = config
        self.config_path = config_path
        self.pool = EnginePool(config_path.resolve().parent)
        self.publisher: Any | None = None
        self.cameras: dict[str, CameraPipeline] = {}
        self.metrics: Any | None = None  # streamseg.metrics.MetricsServer when metrics_port is set
        self.failed: dict[str, str] = {}  # cameras that could not even start
        self.started = threading.Event()  # set once every camera has been started (or has failed to)
        self._stop = threading.Event()
        self._signalled = False
        self.secrets = SecretFilter.from_config(config)  # never in a log line, a status or the stats

    def run(self, *, handle_signals: bool = True) -> int:
        """Block until every camera has ended (files) or a signal arrives. 0: clean; 1: a camera failed."""
        self.secrets.install()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
        started = time.monotonic()
        try:
            self._start_publisher()
            self._start_metrics()
            self._start_cameras()
        finally:
            self.started.set()
        try:
            self._monitor()
        finally:
            self._shutdown()
        self._summary(time.monotonic() - started)
        self.secrets.remove()
        failed = self.failed or {n: c.error for n, c in self.cameras.items() if c.state == "failed"}
        return 0 if self._signalled or not failed else 1

    def stop(self) -> None:
        self._stop.set()

    # -- start -------------------------------------------------------------------------------------
    def _start_publisher(self) -> None:
        mqtt = self.config.mqtt
        if mqtt is None:
            return
        from streamseg.sinks.mqtt import MqttPublisher
        from streamseg.sinks.outbox import Outbox, default_path

        outbox = None
        if mqtt.outbox.enabled:
            ob = mqtt.outbox
            outbox = Outbox(
                ob.path or default_path(mqtt.topic_prefix),
                max_messages=ob.max_messages,
                max_bytes=int(ob.max_mb * 2**20),
                policy=ob.policy,
            )
        try:
            password = mqtt.read_password()
        except OSError as exc:
            raise StreamsegError(f"mqtt.password_file: cannot read {mqtt.password_file}: {exc.strerror}") from None
        tls = mqtt.tls
        self.publisher = MqttPublisher(
            mqtt.host,
            mqtt.port,
            topic_prefix=mqtt.topic_prefix,
            qos=mqtt.qos,
            username=mqtt.username,
            password=password,
            client_id=mqtt.client_id,
            keepalive=mqtt.keepalive,
            protocol=mqtt.protocol,
            tls=tls is not None,
            tls_ca=tls.ca if tls else None,
            tls_cert=tls.cert if tls else None,
            tls_key=tls.key if tls else None,
            tls_insecure=tls.insecure if tls else False,
            max_message_bytes=mqtt.max_message_bytes,
            outbox=outbox,
        )

    def _start_metrics(self) -> None:
        if self.config.metrics_port is None:
            return
        from streamseg.metrics import MetricsServer

        try:
            self.metrics = MetricsServer(lambda: self.cameras, self.config.metrics_host, self.config.metrics_port)
        except OSError as exc:  # port taken: the cameras matter more than the metrics
            log.error("metrics: cannot listen on %s:%d: %s", self.config.metrics_host, self.config.metrics_port, exc)

    def _start_cameras(self) -> None:
        for name, cfg in self.config.cameras.items():
            if not cfg.enabled:
                log.info("camera %r: disabled in the config", name)
                continue
            try:
                model = self.pool.model(cfg.model)
                sinks = build_sinks(
                    name, cfg, self.publisher, self.config.mqtt.detections if self.config.mqtt else False
                )
                pipeline = CameraPipeline(name, cfg, model, sinks, on_status=self._on_status)
                pipeline.start()
            except (StreamsegError, OSError) as exc:  # this camera only; the others keep running
                self.failed[name] = self.secrets.redact(str(exc))
                log.error("camera %r: cannot start: %s", name, exc)
                self._on_status(name, "failed", str(exc))
                continue
            self.cameras[name] = pipeline

    # -- run ---------------------------------------------------------------------------------------
    def _monitor(self) -> None:
        interval = self.config.stats_interval
        next_stats = time.monotonic() + interval
        tty = sys.stderr.isatty()
        while not self._stop.is_set():
            if all(c.done for c in self.cameras.values()):
                return
            self._stop.wait(0.5)
            if tty:
                self._progress_line()
            if time.monotonic() >= next_stats:
                next_stats += interval
                self._publish_stats()

    def _shutdown(self) -> None:
        for camera in self.cameras.values():
            camera.stop()
        for name, camera in self.cameras.items():
            if not camera.join(timeout=60):
                log.warning("camera %r did not drain within 60 s", name)
        if self.publisher is not None:
            self._publish_stats()
            self.publisher.close()
        if self.metrics is not None:
            self.metrics.close()
        self.pool.close()

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("received %s: draining and stopping", signal.Signals(signum).name)
        self._signalled = True
        self._stop.set()

    def _on_status(self, camera: str, state: str, error: str | None) -> None:
        if self.publisher is not None:
            pipeline = self.cameras.get(camera)
            fps = round(pipeline.stats.fps, 2) if pipeline else 0.0
            self.publisher.status(camera, state, fps=fps, error=error and self.secrets.redact(error))

    # -- reporting ---------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        cameras = {}
        for name, c in self.cameras.items():
            times = c.times.ms_per_frame()
            cameras[name] = {
                "state": c.state,
                "error": c.status_error,
                "fps": round(c.stats.fps, 2),
                "frames": c.stats.frames,
                "dropped": c.dropped,
                "skipped": c.source.frames_skipped,
                "reconnects": c.reconnects,
                "inference_ms": round(times["infer"], 2),
                "latency_ms": round(1000 * c.stats.latency_s, 1),
                "queues": {"ring": c.ring.depth, **{s.kind: s.depth for s in c.sinks}},
                "sink_dropped": {s.kind: s.dropped for s in c.sinks},
                "sinks": {s.kind: s.stats() for s in c.sinks},
            }
        for name, error in self.failed.items():
            cameras[name] = {"state": "failed", "error": error}
        return {"ts": round(time.time(), 3), "cameras": cameras}

    def _publish_stats(self) -> None:
        stats = self.stats()
        for name, s in stats["cameras"].items():
            if "fps" in s:
                log.info(
                    "camera %r: %s, %d frames, %.1f fps, infer %.1f ms, dropped %d",
                    name,
                    s["state"],
                    s["frames"],
                    s["fps"],
                    s["inference_ms"],
                    s["dropped"],
                )
        if self.publisher is not None:
            self.publisher.stats(stats)

    def _progress_line(self) -> None:
        parts = []
        for name, c in self.cameras.items():
            parts.append(f"{name}: {c.stats.frames} frames {c.stats.fps:.1f} fps {c.stats.tracks_in_view} tracks")
        sys.stderr.write("\r" + " | ".join(parts) + "\033[K")
        sys.stderr.flush()

    def _summary(self, elapsed: float) -> None:
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        for name, c in self.cameras.items():
            # Only files that got data, under the name actually written (a video never overwrites: bikes-1.mp4).
            wrote = [str(path) for sink in c.sinks for path in sink.outputs()]
            lost = [f"{s.target} dropped {s.dropped}" for s in c.sinks if s.dropped]
            log.info(
                "summary %r: %s, %d frames in %.1f s (%.1f fps), %d detections, %d events, %d dropped%s%s%s",
                name,
                c.state,
                c.stats.frames,
                elapsed,
                c.stats.frames / elapsed if elapsed > 0 else 0.0,
                c.stats.detections,
                c.stats.events,
                c.dropped,
                f", error: {c.error}" if c.error else "",
                f", wrote {', '.join(wrote)}" if wrote else "",
                "".join(f", {text}" for text in lost),
            )
        for name, error in self.failed.items():
            log.info("summary %r: failed to start: %s", name, error)
        if self.publisher is not None:  # the last stats message is lost when the broker is down: say it here
            log.info("summary mqtt: %s", self.publisher.summary())
