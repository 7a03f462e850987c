"""A moving synthetic scene with one tracked detection: frames as a live camera hands them to the video sinks."""

from __future__ import annotations

import numpy as np
import supervision as sv

from streamseg.sinks.base import FrameResult
from tests.sinks.helpers import boxes_only


def scene(i: int, width: int = 640, height: int = 360) -> np.ndarray:
    """Frame `i`: a grey gradient with a bright square that moves right, so consecutive frames differ."""
    image = np.tile(np.linspace(40, 200, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
    x = (8 * i) % (width - 40)
    image[height // 2 - 20 : height // 2 + 20, x : x + 40] = (0, 220, 255)
    return image


def live_results(n: int, fps: float = 25.0, *, start: int = 0, t0: float = 1_760_000_000.0, **size: int):
    """`n` FrameResults at `fps`, pts and capture time on the frame grid (frame `start` onwards)."""
    for i in range(start, start + n):
        image = scene(i, **size)
        yield FrameResult(
            camera="front",
            frame=i,
            pts=i / fps,
            capture_ts=t0 + i / fps,
            width=image.shape[1],
            height=image.shape[0],
            detections=boxes_only(["person"], tracker_id=[7]),
            image=image,
            fps=fps,
        )


def decode(path: str) -> tuple[str, tuple[int, int], list[np.ndarray]]:
    """(codec, (width, height), BGR frames) of the first video stream of `path`."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
        return stream.codec_context.name, (stream.codec_context.width, stream.codec_context.height), frames


def empty() -> sv.Detections:
    return sv.Detections.empty()
