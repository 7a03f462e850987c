"""JSON-lines sink: one object per processed frame (`"topic": "detections"`) and per event (`"events"`).

Each line is the MQTT payload of the same topic plus a `topic` key, so a file and a broker carry the same data.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import IO

from streamseg.config.camera import CameraConfig
from streamseg.sinks.base import FrameResult, Sink, waits_for_sinks
from streamseg.sinks.serialize import dumps, frame_payload


class JsonlSink(Sink):
    """Appends to `path`: a restart keeps what earlier runs wrote.

    Each result's lines go to the file in one unbuffered write, so a failure is seen at once (and retried by
    the base class) and a crash never leaves half a result buffered. A write cut short (a full disk) is cut
    back off the file, so every line stays whole JSON. Like logging's WatchedFileHandler, the file is opened
    again when `path` no longer names it (moved away by log rotation, deleted, replaced).
    """

    kind = "jsonl"

    def __init__(
        self,
        camera: str,
        path: Path,
        *,
        mask_format: str = "polygon",
        polygon_tolerance: float = 1.0,
        queue_size: int = 256,
        block_when_full: bool = False,
    ) -> None:
        super().__init__(camera, queue_size=queue_size, block_when_full=block_when_full)
        self.path = Path(path)
        self.mask_format = mask_format
        self.polygon_tolerance = polygon_tolerance
        self.lines = 0  # lines this run wrote
        self._file: IO[bytes] | None = None

    @classmethod
    def from_config(cls, camera: str, cfg: CameraConfig) -> JsonlSink:
        assert cfg.outputs.jsonl is not None
        return cls(
            camera,
            cfg.outputs.jsonl.path,
            mask_format=cfg.mask_format,
            polygon_tolerance=cfg.polygon_tolerance,
            block_when_full=waits_for_sinks(cfg),
        )

    @property
    def target(self) -> str:
        return f"jsonl output {self.path}"

    def outputs(self) -> list[Path]:
        return [self.path] if self.lines else []

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("a+b", buffering=0)  # + : to read the last byte
        try:
            size = os.fstat(file.fileno()).st_size
            if size and os.pread(file.fileno(), 1, size - 1) != b"\n":
                file.write(b"\n")  # a line cut short earlier (a crash): keep it, start ours on a line of its own
        except BaseException:
            file.close()
            raise
        self._file = file

    def write(self, result: FrameResult) -> None:
        lines = []
        if result.inferred:  # detections are per processed frame (a gated frame has its events only)
            payload = frame_payload(
                result, self.mask_format, publish_ts=time.time(), polygon_tolerance=self.polygon_tolerance
            )
            lines.append(dumps({"topic": "detections", **payload}))
        lines.extend(dumps({"topic": "events", **event.to_dict()}) for event in result.events)
        self._append(lines)

    def finish(self, end_events: list) -> None:
        self._append([dumps({"topic": "events", **event.to_dict()}) for event in end_events])

    def _append(self, lines: list[str]) -> None:
        """Write whole lines in one write (a failed write leaves no part-line behind: see below)."""
        if not lines:
            return
        if self._file is not None and self._replaced():
            self._discard_file()
        if self._file is None:
            self.open()
        assert self._file is not None
        fd = self._file.fileno()
        data = memoryview(("\n".join(lines) + "\n").encode())
        start = os.fstat(fd).st_size
        try:
            while data:
                data = data[self._file.write(data) :]
        except BaseException:
            # Drop the part-line a short write left (ENOSPC); it is retried whole. Should that fail too, open()
            # starts the retry on a line of its own.
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_size > start:
                    os.ftruncate(fd, start)
            self._discard_file()
            raise
        self.lines += len(lines)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _replaced(self) -> bool:
        """`path` no longer names the open file (moved, deleted, replaced)."""
        assert self._file is not None
        try:
            on_disk = os.stat(self.path)
        except OSError:
            return True
        ours = os.fstat(self._file.fileno())
        return (on_disk.st_dev, on_disk.st_ino) != (ours.st_dev, ours.st_ino)

    def _discard_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()
