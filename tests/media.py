"""Test media made from the real clips in ../shared (remuxed, not re-encoded, but for MJPEG), and damaged copies."""

from __future__ import annotations

import random
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np


def remux(src: Path, dst: Path, **open_kwargs: object) -> Path:
    """Copy the video stream of `src` into a new container at `dst` (format/options in `open_kwargs`)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", **open_kwargs) as out:
        stream_in = inp.streams.video[0]
        stream_out = out.add_stream_from_template(stream_in)
        for packet in inp.demux(stream_in):
            if packet.dts is not None:  # the demuxer's final flush packet carries no data
                packet.stream = stream_out
                out.mux(packet)
    return dst


def damage(src: Path, dst: Path, *, size: int = 50_000, at: float = 0.5, seed: int = 12) -> Path:
    """Copy `src` to `dst` with `size` bytes around the fraction `at` of the file overwritten by random bytes."""
    data = bytearray(src.read_bytes())
    start = int(len(data) * at) - size // 2
    data[start : start + size] = random.Random(seed).randbytes(size)
    dst.write_bytes(data)
    return dst


def scramble_after_header(src: Path, dst: Path, *, seed: int = 7) -> Path:
    """Copy an MP4 whose index (moov) comes first, with every byte of the media data (mdat) made random."""
    data = bytearray(src.read_bytes())
    mdat = data.find(b"mdat") + 4
    assert mdat > 4 and data.find(b"moov") < mdat, f"{src} has no index before its media data"
    data[mdat:] = random.Random(seed).randbytes(len(data) - mdat)
    dst.write_bytes(data)
    return dst


class Tolerant(NamedTuple):
    frames: list[np.ndarray]
    bad_packets: int


def decode_tolerantly(path: Path) -> Tolerant:
    """What FFmpeg's own error-tolerant decode gets (the ffmpeg CLI logs a refused packet and goes on):
    every packet through the decoder, frame threads like the CLI, refused packets skipped and counted."""
    frames, bad = [], 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for packet in container.demux(stream):
            try:
                frames += [f.to_ndarray(format="bgr24") for f in stream.codec_context.decode(packet)]
            except av.InvalidDataError:
                bad += 1
    return Tolerant(frames, bad)


def mjpeg_parts(src: Path, dst: Path, *, frames: int = 50) -> Path:
    """The first `frames` frames of `src` as JPEGs in a multipart stream (what an MJPEG IP camera sends over
    http; FFmpeg's mpjpeg format). JPEG needs a re-encode, the one exception in this module."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mpjpeg") as out:
        stream_in = inp.streams.video[0]
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = stream_in.width, stream_in.height, "yuvj420p"
        for i, frame in enumerate(inp.decode(stream_in)):
            if i == frames:
                break
            out.mux(stream.encode(frame.reformat(format="yuvj420p")))
        out.mux(stream.encode())
    return dst


def grey_ramp(dst: Path, values: list[int], *, size: tuple[int, int] = (320, 320), fps: int = 25) -> Path:
    """An H.264 MP4 whose frame i is uniformly grey at `values[i]` (0..255), so a frame can be told from its pixels
    (the fake engine turns the mean into a box position). Lossless (qp 0) so the values survive encoding."""
    w, h = size
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"qp": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p"
        for value in values:
            image = np.full((h, w, 3), value, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return dst


def still_clip(
    src: Path, dst: Path, *, still_before: float = 20.0, moving: float = 4.0, still_after: float = 4.0, fps: int = 25
) -> tuple[range, range, range]:
    """A surveillance-like clip from `src`: its first frame held for `still_before` seconds, then `moving` seconds
    of its real motion, then its last moving frame held for `still_after` seconds (H.264, `fps`). Returns the frame
    indices of the three parts: still, moving, still."""
    n_before, n_moving, n_after = round(still_before * fps), round(moving * fps), round(still_after * fps)
    with av.open(str(src)) as inp:
        source = [f.to_ndarray(format="bgr24") for _, f in zip(range(n_moving + 1), inp.decode(video=0), strict=False)]
    h, w = source[0].shape[:2]
    images = [source[0]] * n_before + source[1 : n_moving + 1] + [source[n_moving]] * n_after
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "20", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for image in images:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(stream.encode())
    return range(n_before), range(n_before, n_before + n_moving), range(n_before + n_moving, len(images))
