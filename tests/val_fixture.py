"""The real-frame val fixture: tests/data/val_fixture/annotations.json (COCO format) over frames of the shared media.

The images are never committed: `materialize` puts bus.jpg and zidane.jpg (copied) and some frames of bikes.mp4
(decoded by PyAV, saved losslessly as PNG) beside a copy of the annotations, in a folder `streamseg val` reads.
The annotations were written by tools/make_val_fixture.py from the fp32 model's own predictions (see its docstring).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import cv2

ANNOTATIONS = Path(__file__).resolve().parent / "data" / "val_fixture" / "annotations.json"
IMAGES = ("bus.jpg", "zidane.jpg")
BIKES_FRAMES = (0, 25, 50, 75, 100, 125, 150, 175, 200, 225, 249)  # frame indices of bikes.mp4 (250 frames)


def bikes_name(index: int) -> str:
    return f"bikes_{index:04d}.png"


def materialize(media: Path, dst: Path, *, annotations: Path | None = ANNOTATIONS) -> Path:
    """`dst` filled with the fixture's images (and its annotations.json unless `annotations` is None)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in IMAGES:
        shutil.copyfile(media / name, dst / name)
    wanted = set(BIKES_FRAMES)
    with av.open(str(media / "bikes.mp4")) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                cv2.imwrite(str(dst / bikes_name(i)), frame.to_ndarray(format="bgr24"))
                wanted.discard(i)
            if not wanted:
                break
    assert not wanted, f"bikes.mp4 has no frames {sorted(wanted)}"
    if annotations is not None:
        shutil.copyfile(annotations, dst / "annotations.json")
    return dst
