"""Cameras whose model runs with the same runtime settings share one inference stage; this pool builds them."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from streamseg.config.model import ModelConfig, TensorRTConfig, TritonConfig
from streamseg.engines import backend_for, create_engine
from streamseg.errors import ModelError
from streamseg.inference.stage import InferenceStage
from streamseg.models.registry import resolve_model
from streamseg.vocab import Backend

log = logging.getLogger(__name__)

MAX_AUTO_WORKERS = 4
GPU_WORKERS = 2  # two execution contexts / streams: one batch's copies overlap the other's compute
TRITON_WORKERS = 4  # requests in flight to a Triton server, which batches them with other daemons' requests


def available_cores() -> int:
    """CPU cores this process may run on (taskset, cgroup cpusets), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def auto_workers(cores: int, cameras: int, gpu: bool) -> int:
    """Engine calls in flight when `workers: auto`.

    GPU: two execution contexts / streams, so one batch's copies overlap the other's compute. CPU: several
    sessions in flight beat one session with every thread (measured on 2 cores with the fast 320 model: 2
    sessions 56-61 fps against one 2-thread session 52-53), up to one per core, no more than two per camera
    (a camera keeps only a few frames in flight), and at most 4, so each session keeps a few cores.
    """
    if gpu:
        return GPU_WORKERS
    return max(1, min(cores, 2 * max(cameras, 1), MAX_AUTO_WORKERS))


@dataclass(frozen=True)
class StageKey:
    """The settings that make two cameras' inference interchangeable (thresholds are per camera)."""

    path: Path
    backend: str
    providers: tuple[str, ...]
    device: str
    threads: int | None
    workers: int | None  # None: auto
    batch_size: int
    batch_timeout_ms: float
    tensorrt: TensorRTConfig
    triton: TritonConfig


class StagePool:
    """`stage(model_cfg, cameras)` -> the shared InferenceStage for those settings, started; `close()` them all."""

    def __init__(self, base_dir: Path, cores: int | None = None) -> None:
        self.base_dir = base_dir
        self.cores = cores or available_cores()
        self._stages: dict[StageKey, InferenceStage] = {}

    def key(self, cfg: ModelConfig) -> StageKey:
        return StageKey(
            path=self._path(cfg),
            backend=str(cfg.backend),
            providers=tuple(cfg.providers or ()),
            device=str(cfg.device),
            threads=cfg.threads,
            workers=None if cfg.workers == "auto" else int(cfg.workers),
            batch_size=cfg.batch_size,
            batch_timeout_ms=cfg.batch_timeout_ms,
            tensorrt=cfg.tensorrt,
            triton=cfg.triton,
        )

    def _path(self, cfg: ModelConfig) -> Path:
        """The model file; a Triton server needs none (the path then only names the model)."""
        try:
            return resolve_model(cfg.path, self.base_dir, mirror=cfg.mirror, sha256=cfg.sha256)
        except ModelError:
            if cfg.backend != Backend.TRITON:
                raise
            return self.base_dir / cfg.path

    def stage(self, cfg: ModelConfig, cameras: int = 1) -> InferenceStage:
        """The stage for `cfg`'s settings; `cameras`: how many cameras will share it (for `workers: auto`)."""
        key = self.key(cfg)
        stage = self._stages.get(key)
        if stage is None:
            stage = self._build(key, cameras).start()
            self._stages = {**self._stages, key: stage}  # replaced, not changed: `stages` is read on other threads
        return stage

    @property
    def stages(self) -> list[InferenceStage]:
        return list(self._stages.values())

    def retain(self, keys: set[StageKey]) -> list[InferenceStage]:
        """Close and forget the stages whose key is not in `keys` (no camera uses them any more); the closed."""
        closed = [stage for key, stage in self._stages.items() if key not in keys]
        self._stages = {key: stage for key, stage in self._stages.items() if key in keys}
        for stage in closed:
            stage.close()
        return closed

    def close(self) -> None:
        """Close every stage (they stay listed, with their stats, for the final report)."""
        for stage in self._stages.values():
            stage.close()

    def _build(self, key: StageKey, cameras: int) -> InferenceStage:
        backend = backend_for(key.path, key.backend)
        gpu = backend == Backend.TENSORRT or key.device.startswith("cuda")
        workers = key.workers or (
            TRITON_WORKERS if backend == Backend.TRITON else auto_workers(self.cores, cameras, gpu=gpu)
        )
        threads = key.threads or max(1, self.cores // workers)  # each worker its share of the cores
        # sessions sharing the cores must not spin
        first = self.open_engine(key, threads, spin=workers == 1, contexts=workers)
        cpu = first.device == "cpu"
        if key.workers is None and not cpu and backend != Backend.TRITON:
            workers = auto_workers(self.cores, cameras, gpu=True)
        if first.capacity is not None and workers > first.capacity:
            log.warning(
                "inference %s: %s runs at most %d call(s) at once: %d worker(s), not %d",
                key.path.name,
                first.name,
                first.capacity,
                first.capacity,
                workers,
            )
            workers = first.capacity
        engines = [first]
        solo = None
        try:
            engines += [self.open_engine(key, threads, spin=False, contexts=workers) for _ in range(workers - 1)]
            if cpu and workers > 1 and key.threads is None and threads < self.cores:
                # a frame that comes alone gets every core
                solo = self.open_engine(key, self.cores, spin=False, contexts=workers)
        except BaseException:
            for engine in engines:
                engine.close()
            raise
        log.info(
            "inference %s: %s, %d worker(s)%s%s, batch %d",
            key.path.name,
            first.name,
            workers,
            f" x {threads} thread(s)" if cpu else "",
            f", a frame alone on {self.cores} threads" if solo is not None else "",
            key.batch_size,
        )
        return InferenceStage(
            engines,
            solo=solo,
            batch_size=key.batch_size,
            batch_timeout=key.batch_timeout_ms / 1000.0,
            name=key.path.name,
        )

    @staticmethod
    def open_engine(key: StageKey, threads: int, spin: bool, contexts: int = 1):  # noqa: ANN205 - an Engine
        """One engine of `key`'s model and runtime settings (the stage's workers; `streamseg bench`'s baseline)."""
        return create_engine(
            key.path,
            backend=key.backend,
            providers=list(key.providers) or None,
            device=key.device,
            threads=threads,
            spin=spin,
            max_batch=key.batch_size,
            contexts=contexts,
            tensorrt=key.tensorrt,
            triton=key.triton,
        )
