"""The annotated stream of one camera, published to an RTSP server (MediaMTX, go2rtc) for people to watch."""

from __future__ import annotations

import logging
import time
from typing import ClassVar

import av

from streamseg.config.camera import CameraConfig
from streamseg.sinks.annotated import AnnotatedSink
from streamseg.sinks.base import FrameResult
from streamseg.sinks.encoder import Encoding
from streamseg.sources.url import redact_url
from streamseg.vocab import RtspTransport

log = logging.getLogger(__name__)


class RtspSink(AnnotatedSink):
    """Pushes annotated H.264 to `url` with FFmpeg's RTSP muxer (ANNOUNCE + RECORD), TCP by default.

    A viewer stream, never a reason to wait: its queue is short and a full one drops frames (counted in
    `dropped`, the stats and the metrics) while detection and MQTT go on. A server that is down or goes
    away fails the write; the sink then reconnects with capped, jittered backoff (Sink's retry, up to
    `retry_max` seconds) and the camera shows `degraded` with the reason until it is back. Every socket
    operation is bounded by `timeout`, and a frame that took longer than that to send counts as a failed
    write, so a server that stops reading is reconnected like one that is gone.
    """

    kind: ClassVar[str] = "rtsp"
    # A frozen server makes a write slow (each socket write waits up to `timeout`), never stuck for good, and
    # the camera drops frames for it meanwhile: not a reason for the systemd watchdog to restart everything.
    watchdog: ClassVar[bool] = False
    drain_timeout: float = 2.0  # at the end of a stream, a server that is away is not waited for long

    def __init__(
        self,
        camera: str,
        url: str,
        encoding: Encoding | None = None,
        *,
        transport: RtspTransport = RtspTransport.TCP,
        timeout: float = 5.0,
        queue_size: int = 8,
        retry_max: float = 30.0,
        **kwargs,
    ) -> None:
        super().__init__(camera, encoding or Encoding(), queue_size=queue_size, **kwargs)
        self.url = url
        self.transport = transport
        self.timeout = timeout
        self.retry_max = retry_max
        self.connects = 0  # connections made (1 + reconnects)

    @property
    def target(self) -> str:
        return f"rtsp output {redact_url(self.url)}"

    @classmethod
    def from_config(cls, camera: str, cfg: CameraConfig) -> RtspSink:
        rtsp = cfg.outputs.rtsp
        assert rtsp is not None
        return cls(
            camera,
            rtsp.url,
            Encoding.from_settings(rtsp),
            transport=rtsp.transport,
            timeout=rtsp.timeout,
            queue_size=rtsp.queue_size,
            retry_max=rtsp.retry_max,
            zones=cfg.zones,
            lines=cfg.lines,
        )

    def stats(self) -> dict:
        return super().stats() | {"connects": self.connects}

    def write(self, result: FrameResult) -> None:
        try:
            super().write(result)
        except OSError as exc:  # FFmpeg's errors name the URL as given, password and all: the target names it
            if exc.filename is None:
                raise
            raise OSError(exc.errno, exc.strerror or str(exc)) from None

    def _open_container(self, result: FrameResult) -> av.container.OutputContainer:
        # The connection is made when the header is written, with the first packet; `timeout` (microseconds)
        # bounds the TCP connect and every send after it.
        options = {"rtsp_transport": str(self.transport), "timeout": str(round(self.timeout * 1_000_000))}
        return av.open(self.url, mode="w", format="rtsp", options=options, timeout=self.timeout)

    def _mux(self, packets: list[av.Packet]) -> None:
        # FFmpeg bounds each socket write by `timeout` but goes on after one that timed out (the stream is
        # broken from there): a frame that took longer than `timeout` means the server stopped reading.
        t0 = time.monotonic()
        super()._mux(packets)
        took = time.monotonic() - t0
        if took > self.timeout:
            raise TimeoutError(f"the server took {took:.1f} s to take one frame (timeout {self.timeout:g} s)")

    def _written(self, result: FrameResult) -> None:
        if self._encoder is not None and self._encoder.frames == 1:  # the first packet went out: connected
            self.connects += 1
            log.info("camera %r: publishing to %s (%s)", self.camera, redact_url(self.url), self.codec)
