"""`streamseg predict`: one JSON object for an image, JSON lines (one per frame) for a video."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import IO

import numpy as np

from streamseg.engines import Engine, create_engine
from streamseg.errors import SourceError, StreamsegError
from streamseg.models.registry import resolve_model
from streamseg.models.yolo import YoloModel
from streamseg.sinks.serialize import detection_dicts, dumps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def predict(args: argparse.Namespace) -> int:
    source: Path = args.source
    if not source.is_file():
        raise SourceError(f"source file not found: {source}")
    engine = create_engine(resolve_model(args.model), threads=args.threads)
    check_imgsz(engine, args.imgsz)
    model = YoloModel(engine.info, conf=args.conf, iou=args.iou, max_det=args.max_det, agnostic_nms=args.agnostic_nms)
    out_ctx = nullcontext(sys.stdout) if args.out == "-" else _open_out(Path(args.out))
    with engine, out_ctx as out:
        for index, image in _images(source):
            dets = model.predict(engine, image)
            obj = {
                "source": str(source),
                "frame": index,
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
                "detections": detection_dicts(dets, args.mask_format),
            }
            out.write(dumps(obj) + "\n")
    return 0


def check_imgsz(engine: Engine, imgsz: int | None) -> None:
    """Refuse an --imgsz the model's fixed input does not have (exported models have one size)."""
    if imgsz is not None and (imgsz, imgsz) != engine.info.imgsz:
        h, w = engine.info.imgsz
        raise StreamsegError(
            f"--imgsz {imgsz}: {engine.info.path.name} has a fixed {w}x{h} input; "
            f"export the model at {imgsz} to use that size"
        )


def _open_out(path: Path) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("w", encoding="utf-8")


def _images(source: Path) -> Iterator[tuple[int, np.ndarray]]:
    if source.suffix.lower() in IMAGE_SUFFIXES:
        import cv2

        image = cv2.imread(str(source), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"cannot read image {source}: not an image or unsupported format")
        yield 0, image
        return
    yield from _video_frames(source)


def _video_frames(source: Path) -> Iterator[tuple[int, np.ndarray]]:
    from streamseg.sources.pyav_source import VideoSource
    from streamseg.sources.ring import RingBuffer

    ring = RingBuffer(4, "block")
    video = VideoSource("predict", str(source), ring=ring)
    video.start()
    try:
        while True:
            frame = ring.get(timeout=1.0)
            if frame is None:
                if ring.done:
                    break
                continue
            try:
                yield frame.index, frame.image
            finally:
                frame.release()
    finally:
        video.stop()
        ring.close()
    if video.error:
        raise SourceError(video.error)
