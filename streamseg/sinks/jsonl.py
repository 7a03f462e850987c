"""JSON-lines sink: one object per processed frame (`"topic": "detections"`) and per event (`"events"`).

Each line is the MQTT payload of the same topic plus a `topic` key, so a file and a broker carry the same data.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO

from streamseg.sinks.base import FrameResult, Sink
from streamseg.sinks.serialize import dumps, frame_payload


class JsonlSink(Sink):
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
        self._file: IO[str] | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8")

    def write(self, result: FrameResult) -> None:
        assert self._file is not None
        lines = []
        if not result.final:
            payload = frame_payload(
                result, self.mask_format, publish_ts=time.time(), polygon_tolerance=self.polygon_tolerance
            )
            lines.append(dumps({"topic": "detections", **payload}))
        lines.extend(dumps({"topic": "events", **event.to_dict()}) for event in result.events)
        if lines:
            self._file.write("\n".join(lines) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
