"""`streamseg run`: the lifecycle. Start the publisher, the metrics and every camera; watch them; drain cleanly
on SIGTERM. What it builds comes from their own modules (inference.pool, sinks, sinks.mqtt), what it reports
from report.py."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from streamseg import report
from streamseg.config.app import AppConfig
from streamseg.errors import StreamsegError
from streamseg.inference.pool import StageKey, StagePool
from streamseg.models.yolo import YoloModel
from streamseg.pipeline import CameraPipeline
from streamseg.redaction import SecretFilter
from streamseg.sinks import build_sinks
from streamseg.vocab import CameraState

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, config: AppConfig, config_path: Path) -> None:
        self.config = config
        self.config_path = config_path
        self.pool = StagePool(config_path.resolve().parent)
        self.publisher: Any | None = None  # streamseg.sinks.mqtt.MqttPublisher when `mqtt:` is set
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
        mqtt = self.publisher.summary() if self.publisher is not None else None
        report.summary(self.cameras, self.failed, time.monotonic() - started, mqtt)
        self.secrets.remove()
        failed = self.failed or {n: c.error for n, c in self.cameras.items() if c.state == CameraState.FAILED}
        return 0 if self._signalled or not failed else 1

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> dict[str, Any]:
        return report.stats(self.cameras, self.failed, self.pool.stages)

    # -- start -------------------------------------------------------------------------------------
    def _start_publisher(self) -> None:
        if self.config.mqtt is not None:
            from streamseg.sinks.mqtt import MqttPublisher

            self.publisher = MqttPublisher.from_config(self.config.mqtt)

    def _start_metrics(self) -> None:
        if self.config.metrics_port is None:
            return
        from streamseg.metrics import MetricsServer

        try:
            self.metrics = MetricsServer(lambda: self.cameras, self.config.metrics_host, self.config.metrics_port)
        except OSError as exc:  # port taken: the cameras matter more than the metrics
            log.error("metrics: cannot listen on %s:%d: %s", self.config.metrics_host, self.config.metrics_port, exc)

    def _start_cameras(self) -> None:
        cameras = {}
        for name, cfg in self.config.cameras.items():
            if cfg.enabled:
                cameras[name] = cfg
            else:
                log.info("camera %r: disabled in the config", name)
        sharing = Counter(self._stage_key(cfg.model) for cfg in cameras.values())  # for `workers: auto`
        detections = self.config.mqtt.detections if self.config.mqtt else False
        for name, cfg in cameras.items():
            try:
                stage = self.pool.stage(cfg.model, cameras=sharing[self._stage_key(cfg.model)])
                model = YoloModel.from_config(stage.info, cfg.model)
                sinks = build_sinks(name, cfg, self.publisher, mqtt_detections=detections)
                pipeline = CameraPipeline(name, cfg, model, stage, sinks, on_status=self._on_status)
                pipeline.start()
            except (StreamsegError, OSError) as exc:  # this camera only; the others keep running
                self.failed[name] = self.secrets.redact(str(exc))
                log.error("camera %r: cannot start: %s", name, exc)
                self._on_status(name, CameraState.FAILED, str(exc))
                continue
            self.cameras[name] = pipeline

    def _stage_key(self, model: Any) -> StageKey | None:
        try:
            return self.pool.key(model)
        except StreamsegError:
            return None  # the model cannot be found: that camera fails to start, with this error, below

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
                report.progress_line(self.cameras)
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

    def _publish_stats(self) -> None:
        stats = self.stats()
        report.log_stats(stats)
        if self.publisher is not None:
            self.publisher.stats(stats)

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("received %s: draining and stopping", signal.Signals(signum).name)
        self._signalled = True
        self._stop.set()

    def _on_status(self, camera: str, state: str, error: str | None) -> None:
        if self.publisher is not None:
            pipeline = self.cameras.get(camera)
            fps = round(pipeline.stats.fps, 2) if pipeline else 0.0
            self.publisher.status(camera, state, fps=fps, error=error and self.secrets.redact(error))
