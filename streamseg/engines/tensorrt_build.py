"""Build TensorRT 10 engines from ONNX files, and keep them in a cache that knows when they are stale.

A cached engine's file name carries everything an engine depends on: the ONNX file's sha256, the precision,
the batch profile (largest batch, number of optimization profiles), the TensorRT version and the GPU's compute
capability. Any of them changing gives another name, so a stale engine is never opened: it is built again. The
file is an Ultralytics-style engine (4-byte length, JSON metadata, serialized engine), and its metadata also
holds the key and the engine bytes' sha256, so a damaged cache file is detected before TensorRT reads it, logged,
and rebuilt.

tensorrt and pycuda are imported only when an engine is built, so this module imports without them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import logging
import os
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.errors import ModelError
from streamseg.vocab import Precision

log = logging.getLogger(__name__)

CACHE_ENV = "STREAMSEG_CACHE"
WORKSPACE_BYTES = 1 << 30  # builder scratch memory; TensorRT picks the fastest tactics that fit
CALIB_FRAMES = 200  # int8 calibration: frames spread over the video or the image folder (TensorRT suggests ~500)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
META_KEY = "streamseg"  # our block in the engine file's JSON metadata

_build_locks: dict[Path, threading.Lock] = {}
_build_locks_guard = threading.Lock()
_sha_memo: dict[tuple[str, int, int], str] = {}
_facts_memo: dict[str, OnnxFacts] = {}  # by the ONNX file's sha256


def default_cache_dir() -> Path:
    """$STREAMSEG_CACHE, else ~/.cache/streamseg/engines."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path("~/.cache/streamseg/engines").expanduser()


def build_engine(
    onnx: Path,
    *,
    precision: str = "fp16",
    max_batch: int = 1,
    calib: Path | None = None,
    out: Path | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """Build a TensorRT engine from `onnx` (or take it from the cache) and return its path.

    precision: fp16 (fp32 where the GPU has no fast fp16), fp32 or int8 (`calib`: a video file or a folder of
    images). max_batch: the largest batch of the optimization profile when the ONNX batch axis is dynamic.
    out: also write the engine there (`streamseg export`). Raises ModelError with one line when TensorRT is missing
    or the build fails.
    """
    engine = ensure_engine(
        Path(onnx), precision=precision, max_batch=max_batch, calib=calib, cache_dir=cache_dir, device=0, profiles=1
    )
    if out is None:
        return engine
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_write(out) as tmp:
        shutil.copyfile(engine, tmp)
    return out


# --- the cache key --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineKey:
    """What an engine built from an ONNX file depends on; two builds with equal keys are interchangeable."""

    stem: str  # the ONNX file's name without suffix, for people reading the cache folder
    onnx_sha256: str
    precision: str
    batch: str  # "static4" (fixed batch axis) or "dyn1-8x2" (batch 1..8, 2 optimization profiles)
    tensorrt: str  # TensorRT version
    gpu: str  # compute capability, e.g. "sm87"

    @property
    def filename(self) -> str:
        version = self.tensorrt.replace(".", "_")
        return f"{self.stem}.{self.onnx_sha256[:16]}.{self.precision}.{self.batch}.trt{version}.{self.gpu}.engine"

    @property
    def text(self) -> str:
        return f"{self.onnx_sha256}/{self.precision}/{self.batch}/trt{self.tensorrt}/{self.gpu}"


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered while its size and mtime stay the same (every worker asks)."""
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _sha_memo:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _sha_memo[memo] = digest.hexdigest()
    return _sha_memo[memo]


@dataclass(frozen=True)
class OnnxFacts:
    """What a build needs to know about the ONNX file before TensorRT parses it."""

    metadata: dict[str, str]  # Ultralytics metadata_props (names, imgsz, stride, task ...)
    input_name: str
    input_shape: tuple[int | None, ...]  # None: a dynamic axis

    @property
    def dynamic_batch(self) -> bool:
        return not self.input_shape or self.input_shape[0] is None

    @property
    def imgsz(self) -> tuple[int, int]:
        from streamseg.engines.metadata import parse_imgsz

        size = parse_imgsz(self.metadata.get("imgsz"))
        if size is None and len(self.input_shape) == 4 and self.input_shape[2] and self.input_shape[3]:
            size = (int(self.input_shape[2]), int(self.input_shape[3]))
        return size or (640, 640)


def onnx_facts(onnx: Path) -> OnnxFacts:
    """Read the metadata and input shape with onnxruntime (always installed; the onnx package may not be)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(onnx), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types
        raise ModelError(f"cannot read ONNX file {onnx}: {' '.join(str(exc).split())[:200]}") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{onnx} has {len(inputs)} inputs; streamseg runs models with one input (images)")
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in inputs[0].shape)
    return OnnxFacts(dict(session.get_modelmeta().custom_metadata_map), inputs[0].name, shape)


def batch_profile(facts: OnnxFacts, max_batch: int, profiles: int) -> str:
    if not facts.dynamic_batch:
        return f"static{facts.input_shape[0]}"
    return f"dyn1-{max(1, max_batch)}x{max(1, profiles)}"


# --- building --------------------------------------------------------------------------------------------


def import_tensorrt(what: str) -> tuple[Any, Any]:
    """(tensorrt, pycuda.driver), or ModelError naming the extra to install."""
    try:
        import tensorrt as trt  # isort: skip - TensorRT first: its absence is the likelier one to report
        import pycuda.driver as cuda
    except ImportError as exc:
        raise ModelError(
            f"{what} needs TensorRT and pycuda ({exc.name or exc} is not installed): "
            "pip install 'streamseg[tensorrt]', or on a Jetson use JetPack's TensorRT"
        ) from None
    return trt, cuda


def compute_capability(cuda: Any, device: int) -> str:
    major, minor = cuda.Device(device).compute_capability()
    return f"sm{major}{minor}"


def ensure_engine(
    onnx: Path,
    *,
    precision: str = "fp16",
    max_batch: int = 1,
    calib: Path | None = None,
    cache_dir: Path | None = None,
    device: int = 0,
    profiles: int = 1,
    rebuild: bool = False,
) -> Path:
    """The cached engine for these settings, built first when there is none or the cached file is damaged.

    profiles: execution contexts that will run the engine at once (each needs its own optimization profile
    when the batch axis is dynamic). rebuild: build even if a cached file looks valid (TensorRT refused it).
    """
    onnx = Path(onnx)
    if not onnx.is_file():
        raise ModelError(f"model file not found: {onnx}")
    if precision not in tuple(Precision):
        raise ModelError(f"TensorRT precision {precision!r}: choose from {', '.join(Precision)}")
    precision = str(Precision(precision))
    if precision == Precision.INT8 and calib is None:
        raise ModelError(f"int8 engine from {onnx}: calibration frames are needed (a video file or a folder of images)")
    trt, cuda = import_tensorrt(f"building a TensorRT engine from {onnx}")
    cuda.init()
    sha = file_sha256(onnx)
    if sha not in _facts_memo:  # every worker of a stage asks: read the file once
        _facts_memo[sha] = onnx_facts(onnx)
    facts = _facts_memo[sha]
    key = EngineKey(
        stem=onnx.stem,
        onnx_sha256=sha,
        precision=precision,
        batch=batch_profile(facts, max_batch, profiles),
        tensorrt=str(trt.__version__),
        gpu=compute_capability(cuda, device),
    )
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / key.filename
    with _build_lock(path):
        problem = None if rebuild else check_cached(path, key)
        if problem is None and not rebuild:
            log.info("TensorRT engine for %s: %s (cached)", onnx.name, path)
            return path
        if path.exists():
            log.warning("TensorRT engine cache %s %s: rebuilding", path, problem or "was refused by TensorRT")
        blob = _build(trt, cuda, onnx, facts, key, max_batch, profiles, calib, device, folder)
        meta = {**facts.metadata, META_KEY: {"key": key.text, "engine_sha256": hashlib.sha256(blob).hexdigest()}}
        with _atomic_write(path) as tmp:
            tmp.write_bytes(engine_file_bytes(meta, blob))
    return path


def engine_file_bytes(meta: dict[str, Any], blob: bytes) -> bytes:
    """An Ultralytics-style engine file: 4-byte little-endian length, JSON metadata, serialized engine."""
    header = json.dumps(meta).encode()
    return struct.pack("<I", len(header)) + header + blob


def check_cached(path: Path, key: EngineKey) -> str | None:
    """None when `path` is a complete engine for `key`; else what is wrong with it (for the log line)."""
    from streamseg.engines.tensorrt_engine import split_engine_file

    if not path.is_file():
        return "is missing"
    meta, blob = split_engine_file(path.read_bytes())
    ours = meta.get(META_KEY)
    if not isinstance(ours, dict):
        return "has no streamseg metadata (damaged)"
    if ours.get("key") != key.text:
        return f"was built for {ours.get('key')!r}, not {key.text!r}"
    if hashlib.sha256(blob).hexdigest() != ours.get("engine_sha256"):
        return "is damaged (checksum mismatch)"
    return None


def _build(
    trt: Any,
    cuda: Any,
    onnx: Path,
    facts: OnnxFacts,
    key: EngineKey,
    max_batch: int,
    profiles: int,
    calib: Path | None,
    device: int,
    folder: Path,
) -> bytes:
    log.info(
        "building TensorRT engine from %s (%s, batch %s); this takes minutes on a Jetson",
        onnx,
        key.precision,
        key.batch,
    )
    started = time.monotonic()
    ctx = cuda.Device(device).retain_primary_context()
    ctx.push()
    try:
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode (flag 0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx)):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise ModelError(f"TensorRT cannot parse {onnx}: {errors[0] if errors else 'unknown error'}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        inp = network.get_input(0)
        rest = tuple(inp.shape)[1:]
        shape = (max(1, max_batch), *rest)
        if facts.dynamic_batch:
            # One profile per execution context that runs at once: TensorRT lets a profile serve one context at a
            # time when shapes are dynamic. opt = max: the stage fills batches when cameras queue up.
            for _ in range(max(1, profiles)):
                profile = builder.create_optimization_profile()
                profile.set_shape(inp.name, (1, *rest), shape, shape)
                config.add_optimization_profile(profile)
        elif max_batch > 1:
            log.warning("%s has a fixed batch axis: max_batch %d ignored", onnx.name, max_batch)
        calibrator = set_precision(
            trt, cuda, builder, config, key.precision, calib, facts, inp, shape, folder / f"{key.filename}.calib"
        )
        serialized = builder.build_serialized_network(network, config)
        if calibrator is not None:
            calibrator.device.free()  # its device buffer, while the context it was made in is current
    finally:
        ctx.pop()
        ctx.detach()
    if serialized is None:
        raise ModelError(f"TensorRT could not build an engine from {onnx} (its log above says why)")
    log.info("built TensorRT engine from %s in %.0f s", onnx.name, time.monotonic() - started)
    return bytes(serialized)


def set_precision(
    trt: Any,
    cuda: Any,
    builder: Any,
    config: Any,
    precision: str,
    calib: Path | None,
    facts: OnnxFacts,
    inp: Any,
    shape: tuple[int, ...],
    calib_cache: Path,
) -> Any:
    """Builder flags for the precision; returns the int8 calibrator (None for fp16 and fp32).

    TensorRT 10 dropped `platform_has_fast_fp16` from some builds: then the GPU is assumed to have it (every Jetson
    and every desktop GPU since Volta does)."""
    fast_fp16 = getattr(builder, "platform_has_fast_fp16", True)
    if precision in (Precision.FP16, Precision.INT8):
        if fast_fp16:
            config.set_flag(trt.BuilderFlag.FP16)  # int8: layers without int8 kernels run in fp16, not fp32
        elif precision == Precision.FP16:
            log.warning("this GPU has no fast fp16: building an fp32 engine")
    if precision == Precision.INT8:
        if not getattr(builder, "platform_has_fast_int8", True):
            log.warning("this GPU has no fast int8: the engine may be slower than fp16")
        config.set_flag(trt.BuilderFlag.INT8)
        # Calibration runs the network on the profile's opt shape: batches of shape[0] frames. The first frame is
        # read here: TensorRT calls the calibrator from C++, where an error would only fail the build obscurely.
        frames = calibration_frames(Path(calib), facts.imgsz) if calib is not None else iter(())
        first = next(frames, None)
        if first is None and not calib_cache.is_file():
            raise ModelError(f"int8 calibration: no frames could be read from {calib}")
        frames = itertools.chain([first] if first is not None else [], frames)
        config.int8_calibrator = calibrator = make_calibrator(trt, cuda, frames, shape, calib_cache)
        return calibrator
    return None


def make_calibrator(trt: Any, cuda: Any, frames: Iterator[np.ndarray], shape: tuple[int, ...], cache: Path) -> Any:
    """An IInt8EntropyCalibrator2 feeding `frames` ((3, H, W) float32) in batches of shape[0] from device memory.

    The calibration table is kept beside the engine (`cache`), so a rebuild for another batch profile or after a
    TensorRT update of the same network does not calibrate again.
    """

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batch = np.zeros(shape, np.float32)
            self.device = cuda.mem_alloc(self.batch.nbytes)
            self.seen = 0

        def get_batch_size(self) -> int:
            return int(shape[0])

        def get_batch(self, names: list[str]) -> list[int] | None:
            n = 0
            for n, frame in enumerate(frames, start=1):  # noqa: B007 - n counts the frames taken
                self.batch[n - 1] = frame
                if n == shape[0]:
                    break
            if n == 0:
                log.info("int8 calibration: %d frames", self.seen)
                return None
            self.batch[n:] = self.batch[n - 1]  # a short last batch repeats its last frame
            self.seen += n
            cuda.memcpy_htod(self.device, self.batch)
            return [int(self.device)]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            with _atomic_write(cache) as tmp:
                tmp.write_bytes(bytes(data))

    return Calibrator()


def calibration_frames(source: Path, imgsz: tuple[int, int], limit: int = CALIB_FRAMES) -> Iterator[np.ndarray]:
    """Letterboxed (3, H, W) float32 frames from a folder of images or a video, spread over all of it."""
    from streamseg.models.letterbox import Letterbox

    box = Letterbox(imgsz)
    for image in calibration_images(source, limit):
        yield box(image)[0][0]


def calibration_images(source: Path, limit: int = CALIB_FRAMES) -> Iterator[np.ndarray]:
    """Up to `limit` BGR images from a folder of images or frames of a video, spread over all of it (also what
    `streamseg export --int8` calibrates a QDQ model on)."""
    import cv2

    source = Path(source)
    if source.is_dir():
        images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ModelError(f"calibration folder {source} has no images ({', '.join(IMAGE_SUFFIXES)})")
        step = max(1, len(images) // limit)
        for path in images[::step][:limit]:
            image = cv2.imread(str(path))
            if image is not None:
                yield image
        return
    if not source.is_file():
        raise ModelError(f"calibration frames not found: {source}")
    import av

    from streamseg.sources.pyav_source import bgr_image

    try:
        with av.open(str(source)) as container:
            stream = container.streams.video[0]
            step = max(1, (stream.frames or 0) // limit) if stream.frames else 5
            taken = 0
            for i, frame in enumerate(container.decode(stream)):
                if i % step == 0:
                    yield bgr_image(frame)
                    taken += 1
                    if taken >= limit:
                        return
    except (av.FFmpegError, IndexError) as exc:
        raise ModelError(f"cannot read calibration video {source}: {exc}") from None


# --- files -------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """One build of an engine at a time: between threads here, and between daemons sharing the cache folder."""
    with _build_locks_guard:
        lock = _build_locks.setdefault(path, threading.Lock())
    with lock, open(path.with_name(path.name + ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def _atomic_write(path: Path) -> Iterator[Path]:
    """Write to a temporary file beside `path` and rename it over `path`: a crash never leaves half a file."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
