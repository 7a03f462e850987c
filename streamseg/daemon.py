"""`streamseg run`: the lifecycle. Start the publisher, the metrics, the HTTP server and every camera; watch
them; reload the config on SIGHUP; drain cleanly on SIGTERM. What it builds comes from their own modules
(inference.pool, sinks, sinks.mqtt, homeassistant, http), what it reports from report.py, what counts as healthy
from health.py, and what it tells systemd goes through systemd.py.

SIGHUP reload (on its own thread, so the cameras and the watchdog keep going): the config is read and validated
as `streamseg validate` does; an invalid one is refused with one log line and nothing changes. Otherwise only
the cameras whose resolved settings changed are restarted (stopped, drained, started with the new settings),
new ones started, removed ones stopped (their retained status and counts cleared), and inference stages no
camera uses any more closed. Global settings: see reload.APPLIED; the others need a restart (one log line).
"""

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
from streamseg.config.camera import CameraConfig
from streamseg.errors import ConfigError, StreamsegError
from streamseg.health import health, summary
from streamseg.inference.pool import StageKey, StagePool
from streamseg.models.yolo import YoloModel
from streamseg.pipeline import CameraPipeline
from streamseg.redaction import SecretFilter, config_secrets
from streamseg.reload import ReloadPlan, plan
from streamseg.sinks import build_sinks
from streamseg.systemd import Notifier
from streamseg.vocab import CameraState

log = logging.getLogger(__name__)

STATUS_REFRESH_S = 5.0  # STATUS= (systemctl status) at least this often, and on every state change
STOP_TIMEOUT_S = 60.0  # how long a camera stopped by a reload (or at shutdown) may take to drain


class Daemon:
    def __init__(self, config: AppConfig, config_path: Path, *, log_level: str | None = None) -> None:
        """`log_level`: set on the command line; it then wins over the config's, also after a reload."""
        self.config = config
        self.config_path = config_path
        self.pool = StagePool(config_path.resolve().parent)
        self.publisher: Any | None = None  # streamseg.sinks.mqtt.MqttPublisher when `mqtt:` is set
        self.discovery: Any | None = None  # streamseg.homeassistant.Discovery when `homeassistant.enabled`
        # The running cameras. Replaced, never changed in place, so that readers on other threads (the HTTP
        # server's `lambda: daemon.cameras`, the metrics) always see a whole dict.
        self.cameras: dict[str, CameraPipeline] = {}
        self.metrics: Any | None = None  # streamseg.metrics.MetricsServer when metrics_port is set
        self.http: Any | None = None  # streamseg.http.HttpServer when `http:` is set
        self.failed: dict[str, str] = {}  # cameras that could not even start (replaced too)
        self.started = threading.Event()  # set once every camera has been started (or has failed to)
        self.reloads = 0  # reloads done (refused ones included)
        self.notify = Notifier.from_environ()
        self.secrets = SecretFilter.from_config(config)  # never in a log line, a status or the stats
        self._log_level = log_level
        self._stop = threading.Event()
        self._signalled = False
        self._reload_wanted = threading.Event()
        self._reloader: threading.Thread | None = None
        self._lifecycle = threading.Lock()  # a reload and the shutdown never change the cameras at once
        self._hung: dict[str, str] = {}  # camera -> what is hung, as last logged
        self._states: tuple = ()  # (camera, state, hung) in the last STATUS= sent
        self._status_at = 0.0

    def run(self, *, handle_signals: bool = True) -> int:
        """Block until every camera has ended (files) or a signal arrives. 0: clean; 1: a camera failed."""
        self.secrets.install()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
            signal.signal(signal.SIGHUP, lambda _signum, _frame: self.reload())
        started = time.monotonic()
        try:
            self._start_publisher()
            self._start_metrics()
            self._start_http()
            self._start_discovery()
            self._start_cameras()
        finally:
            self.started.set()
        self.notify.ready(summary(health(self.cameras)[1]))
        try:
            self._monitor()
        finally:
            self.notify.stopping()
            self._shutdown()
        mqtt = self.publisher.summary() if self.publisher is not None else None
        report.summary(self.cameras, self.failed, time.monotonic() - started, mqtt)
        self.secrets.remove()
        self.notify.close()
        failed = self.failed or {n: c.error for n, c in self.cameras.items() if c.state == CameraState.FAILED}
        return 0 if self._signalled or not failed else 1

    def stop(self) -> None:
        self._stop.set()

    def reload(self) -> None:
        """Read the config file again and apply it (what SIGHUP does); done on a thread of its own."""
        self._reload_wanted.set()

    def stats(self) -> dict[str, Any]:
        return report.stats(self.cameras, self.failed, self.pool.stages)

    @property
    def hang_timeout(self) -> float:
        return self.config.hang_timeout

    def redact(self, text: str) -> str:
        """`text` without any secret of the config (for what the HTTP server answers)."""
        return self.secrets.redact(text)

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

    def _start_http(self) -> None:
        if self.config.http is None:
            return
        from streamseg.http import HttpServer

        cfg = self.config.http
        try:
            self.http = HttpServer(cfg, self)
        except OSError as exc:  # port taken, unreadable token_file: the cameras matter more than the page
            log.error("http: cannot serve on %s:%d: %s", cfg.host, cfg.port, self.secrets.redact(str(exc)))

    def _start_discovery(self) -> None:
        if self.config.homeassistant.enabled and self.publisher is not None:
            from streamseg.homeassistant import Discovery

            self.discovery = Discovery(self.publisher, self.config.homeassistant)

    def _start_cameras(self, names: list[str] | None = None) -> None:
        """Start `names` (default: every enabled camera) from self.config."""
        enabled = {n: c for n, c in self.config.cameras.items() if c.enabled}
        if names is None:
            for name, cfg in self.config.cameras.items():
                if not cfg.enabled:
                    log.info("camera %r: disabled in the config", name)
            names = list(enabled)
        sharing = Counter(self._stage_key(cfg.model) for cfg in enabled.values())  # for `workers: auto`
        for i, name in enumerate(names):
            if self._stop.is_set():
                return
            self.notify.status(f"starting camera {name!r} ({i + 1}/{len(names)})")
            cfg = enabled[name]
            self._start_camera(name, cfg, sharing[self._stage_key(cfg.model)])

    def _start_camera(self, name: str, cfg: CameraConfig, sharing: int) -> None:
        detections = self.config.mqtt.detections if self.config.mqtt else False
        try:
            stage = self.pool.stage(cfg.model, cameras=sharing)
            model = YoloModel.from_config(stage.info, cfg.model)
            sinks = build_sinks(name, cfg, self.publisher, mqtt_detections=detections, live=self.config.http)
            pipeline = CameraPipeline(name, cfg, model, stage, sinks, on_status=self._on_status)
            if self.discovery is not None:
                self._discover(name, pipeline)
            self.cameras = {**self.cameras, name: pipeline}  # in its place when restarted by a reload
            pipeline.start()
        except (StreamsegError, OSError) as exc:  # this camera only; the others keep running
            self.failed = {**self.failed, name: self.secrets.redact(str(exc))}
            self.cameras = {n: c for n, c in self.cameras.items() if n != name}
            log.error("camera %r: cannot start: %s", name, exc)
            self._on_status(name, CameraState.FAILED, str(exc))
            return
        self.failed = {n: e for n, e in self.failed.items() if n != name}

    def _discover(self, name: str, pipeline: CameraPipeline) -> None:
        model = pipeline.model
        classes = None if model.classes is None else [model.names[int(i)] for i in model.classes]
        self.discovery.add(name, pipeline.cfg, list(model.names.values()), classes, model=pipeline.stage.name)

    def _stage_key(self, model: Any) -> StageKey | None:
        try:
            return self.pool.key(model)
        except StreamsegError:
            return None  # the model cannot be found: that camera fails to start, with this error, below

    # -- run ---------------------------------------------------------------------------------------
    def _monitor(self) -> None:
        next_stats = time.monotonic() + self.config.stats_interval
        tty = sys.stderr.isatty()
        watchdog = self.notify.watchdog_interval
        tick = min(0.5, watchdog / 4) if watchdog else 0.5
        while not self._stop.is_set():
            reloading = self._reloader is not None and self._reloader.is_alive()
            if self._reload_wanted.is_set() and not reloading:
                self._reload_wanted.clear()
                self._reloader = threading.Thread(target=self._reload, name="reload", daemon=True)
                self._reloader.start()
                reloading = True
            if not reloading and all(c.done for c in self.cameras.values()):
                return
            self._watch()
            self._stop.wait(tick)
            if tty:
                report.progress_line(self.cameras)
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self.config.stats_interval
                self._publish_stats()

    def _watch(self) -> None:
        """Watchdog ping while no camera is hung (health.py), STATUS= with the summary, a log line per change."""
        _, details = health(self.cameras, hang_timeout=self.config.hang_timeout)
        hung = {name: d["hung"] for name, d in details.items() if d["hung"]}
        for name in hung.keys() - self._hung.keys():
            log.error("camera %r is hung: %s; the systemd watchdog is no longer notified", name, hung[name])
        for name in self._hung.keys() - hung.keys():
            log.info("camera %r is no longer hung", name)
        self._hung = hung
        # STATUS= when a state changes, else every few seconds (the fps in it changes on every tick)
        states = tuple((name, d["state"], d["hung"]) for name, d in details.items())
        now = time.monotonic()
        if states != self._states or now - self._status_at >= STATUS_REFRESH_S:
            self._states, self._status_at = states, now
            self.notify.status(summary(details))
        if not hung:
            self.notify.watchdog()

    def _shutdown(self) -> None:
        self._stop.set()  # a reload in progress starts no more cameras
        with self._lifecycle:
            cameras = self.cameras
            for camera in cameras.values():
                camera.stop()
            for name, camera in cameras.items():
                if not camera.join(timeout=STOP_TIMEOUT_S):
                    log.warning("camera %r did not drain within %.0f s", name, STOP_TIMEOUT_S)
            if self.publisher is not None:
                self._publish_stats()
                self.publisher.close()
            if self.metrics is not None:
                self.metrics.close()
            if self.http is not None:
                self.http.close()
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

    # -- reload ------------------------------------------------------------------------------------
    def _reload(self) -> None:
        self.notify.reloading()
        try:
            self._reload_config()
        except Exception:  # a bug in a reload must not take the running cameras down
            log.exception("reload of %s failed; the cameras keep running as they were", self.config_path)
        finally:
            self.reloads += 1
            self.notify.ready(summary(health(self.cameras)[1]))

    def _reload_config(self) -> None:
        from streamseg.config import load_config

        try:
            new = load_config(self.config_path)  # the same checks as `streamseg validate`
        except ConfigError as exc:
            log.error("reload refused, the running config stays: %s", "; ".join(exc.problems))
            return
        self.secrets.add(config_secrets(new))  # before anything logs the new URLs
        with self._lifecycle:
            if self._stop.is_set():
                return
            self._apply(new)

    def _apply(self, new: AppConfig) -> None:
        old = self.config
        changes = plan(old, new)
        # A camera that could not start is tried again; one that is not running needs no stop.
        retry = [n for n in [*changes.keep, *changes.restart] if n in self.failed]
        for name in retry:
            if name in changes.keep:
                changes.keep.remove(name)
            changes.restart.pop(name, None)
            changes.start.append(name)
        log.info("reload %s: %s", self.config_path, changes.describe())
        if changes.needs_restart:
            log.warning(
                "reload: %s changed: that takes effect at the next restart (systemctl restart streamseg)",
                ", ".join(changes.needs_restart),
            )
            new = new.model_copy(update={key: getattr(old, key) for key in changes.needs_restart})

        stuck = self._stop_cameras([*changes.restart, *changes.stop], removed=set(changes.stop))
        self.config = new
        self._apply_globals(changes)
        needed = {self._stage_key(c.cfg.model) for c in self.cameras.values() if not c.done}
        starting = [n for n in [*changes.restart, *changes.start] if n not in stuck]
        needed |= {self._stage_key(new.cameras[n].model) for n in starting}
        for stage in self.pool.retain(needed):
            log.info("reload: inference stage %s closed: no camera uses it any more", stage.name)
        self._start_cameras(starting)

    def _stop_cameras(self, names: list[str], *, removed: set[str]) -> set[str]:
        """Stop these cameras (all at once), wait for each to drain; forget the removed ones. The names of those
        that did not end in time: they are left running (hung: the watchdog restarts the daemon)."""
        stopping = {name: self.cameras[name] for name in names if name in self.cameras}
        for camera in stopping.values():
            camera.stop()
        stuck = set()
        for name, camera in stopping.items():
            if not camera.join(timeout=STOP_TIMEOUT_S):
                log.error("reload: camera %r did not stop within %.0f s; left as it is", name, STOP_TIMEOUT_S)
                stuck.add(name)
                continue
            log.info("reload: camera %r stopped after %d frames", name, camera.stats.frames)
            if name in removed:
                self.cameras = {n: c for n, c in self.cameras.items() if n != name}
                self._forget(name, camera)
        for name in removed - stopping.keys():  # removed while it could not start
            self.failed = {n: e for n, e in self.failed.items() if n != name}
            self._forget(name, None)
        return stuck

    def _forget(self, name: str, camera: CameraPipeline | None) -> None:
        """A camera gone from the config: its retained MQTT topics and its Home Assistant device go too."""
        if self.publisher is not None:
            retained = [s.retained for s in camera.sinks if hasattr(s, "retained")] if camera else []
            self.publisher.forget(name, sorted(set().union(*retained)))
        if self.discovery is not None:
            self.discovery.remove(name)

    def _apply_globals(self, changes: ReloadPlan) -> None:
        new = self.config
        if "log_level" in changes.applied and self._log_level is None:
            logging.getLogger().setLevel(new.log_level.upper())
        if {"metrics_port", "metrics_host"} & set(changes.applied):
            if self.metrics is not None:
                self.metrics.close()
                self.metrics = None
            self._start_metrics()
        if "http" in changes.applied:
            if self.http is not None:
                self.http.close()
                self.http = None
            self._start_http()  # the cameras kept keep their live view; without one before, they get it on restart
        if "homeassistant" in changes.applied:
            ha = new.homeassistant
            if self.discovery is not None and (
                not ha.enabled or ha.discovery_prefix != self.discovery.cfg.discovery_prefix
            ):
                self.discovery.clear()
                self.discovery.close()
                self.discovery = None
            if self.discovery is not None:
                self.discovery.cfg = ha  # the labels changed: the cameras kept are published again below
            else:
                self._start_discovery()
            if self.discovery is not None:
                restarting = set(changes.restart) | set(changes.start)
                for name, camera in self.cameras.items():
                    if name not in restarting and not camera.done:
                        self._discover(name, camera)
