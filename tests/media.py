"""Test media made from the real clips in ../shared, without re-encoding."""

from __future__ import annotations

from pathlib import Path

import av


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
