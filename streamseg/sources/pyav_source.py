"""Decode a video file or a live stream with PyAV on its own thread, into a RingBuffer.

A live source (rtsp, http, a device) runs a small state machine: starting -> streaming -> reconnecting ->
streaming ... and ends only when stopped (or `failed` after `max_retries` failed attempts in a row).
A file ends at its end (`stopped`), or `failed` when it cannot be read.

Damaged data is skipped, as the ffmpeg CLI does: a packet the decoder refuses is counted (`bad_packets`) and
logged once per burst (a warning when the burst starts, one with the count when a frame decodes again). The
camera gives up only when nothing decodes for a while: a live source after `stall_timeout` seconds without a
frame (then it reconnects), a file after `max_bad_packets` refused packets or `max_bad_bytes` of refused data in
a row, or at its end when not one frame decoded (then `failed`). A demuxer error is retried, since some demuxers
(mpjpeg) find the next packet when asked again; one that keeps failing ends the input, like the CLI.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import av
import numpy as np

from streamseg.sources.backoff import Backoff
from streamseg.sources.hwdecode import open_decoder
from streamseg.sources.kinds import is_live, open_args
from streamseg.sources.ring import RingBuffer
from streamseg.sources.url import redact_text, redact_url

if TYPE_CHECKING:
    from streamseg.config.source import SourceConfig

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 10.0  # connect / read timeout handed to FFmpeg (matters for network URLs)
_POLL_S = 0.2  # how often a producer blocked on a full ring checks for stop()
PTS_JUMP_S = 5.0  # live: a pts step back, or forward by more than this, is a clock reset (rebased)
REALTIME_SLACK_S = 1.0  # realtime files: a reader this far behind its clock starts a new one
# Files: give up after this long a run of refused packets with no frame decoded (20 s at 25 fps; a 4K keyframe
# interval is well under 64 MiB). The run ends at the next decoded frame.
MAX_BAD_PACKETS = 500
MAX_BAD_BYTES = 64 << 20
DEMUX_RETRIES = 8  # demuxer errors in a row, with no packet between, before the input counts as ended

StateCallback = Callable[[str, "str | None"], None]  # (state, error)


class _Stopped(Exception):
    """stop() was called while the decoding thread was waiting for a free slot."""


class StallError(Exception):
    """A live source delivered no frame for `stall_timeout` seconds, or an open or read timed out."""


class GaveUpError(Exception):
    """A file: nothing decodable for too long."""


def _timed_out(exc: BaseException, waited: float, limit: float) -> bool:
    """Whether `exc` ends a read that FFmpeg gave up on because nothing arrived.

    PyAV's timeout interrupts a blocking call with AVERROR_EXIT (av.ExitError), a socket timeout is ETIMEDOUT,
    but the RTSP demuxer turns either into AVERROR_INVALIDDATA ("Invalid data found when processing input"),
    so an error after the call had waited for (nearly) its whole timeout is taken for a timeout too (a real
    protocol error comes as soon as the data does; 10% slack for the timers' granularity).
    """
    return isinstance(exc, av.ExitError | TimeoutError) or (isinstance(exc, av.FFmpegError) and waited >= 0.9 * limit)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def describe_error(url: str, exc: BaseException) -> str:
    """One line naming the URL (password hidden) and what went wrong, never the raw URL."""
    reason = redact_text(_reason(exc), url)
    return " ".join(f"{redact_url(url)}: {reason}".split())


class ProbeResult(NamedTuple):
    """Unpacks as ``width, height, fps, frame_count``."""

    width: int
    height: int
    fps: float | None  # average frame rate, None when the container does not say
    frame_count: int | None  # None when unknown (live streams, some containers)


def probe(url: str, options: dict[str, str] | None = None, timeout: float = OPEN_TIMEOUT_S) -> ProbeResult:
    """Open `url` just long enough to read its first video stream's geometry and rate.

    Raises av.FFmpegError / OSError like av.open, or ValueError when there is no video stream.
    """
    with av.open(url, options=options or {}, timeout=timeout) as container:
        stream = _video_stream(container)
        rate = stream.average_rate
        return ProbeResult(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate) if rate else None,
            frame_count=stream.frames or None,
        )


def bgr_image(frame: av.VideoFrame) -> np.ndarray:
    """The frame as an HxWx3 BGR array, converted on this thread. PyAV's default (17 and newer) splits the
    conversion over every core, which here cost 2.6x the CPU (0.53 against 0.20 ms a 640x272 frame) for the same
    pixels: the other decoders and the engine workers already keep the cores busy."""
    return frame.to_ndarray(format="bgr24", threads=1)


def _video_stream(container: av.container.InputContainer) -> av.VideoStream:
    if not container.streams.video:
        raise ValueError("no video stream")
    return container.streams.video[0]


class FpsGate:
    """Let through at most `fps` frames a second, spaced evenly by pts (Frigate's detect fps).

    A frame passes when its pts reaches the next due time; half a source frame of slack absorbs
    rounding in pts. After a gap, or pts that jump back, the schedule restarts from that frame.
    """

    def __init__(self, fps: float | None, source_fps: float | None) -> None:
        self.interval = 1.0 / fps if fps else 0.0
        self.slack = 0.5 / source_fps if source_fps else 1e-3
        self._due: float | None = None

    def admit(self, pts: float) -> bool:
        if self.interval == 0.0:
            return True
        if self._due is not None and abs(pts - self._due) <= self.interval:  # on schedule
            if pts + self.slack < self._due:
                return False
            self._due += self.interval
        else:  # first frame, a gap, or pts that jumped back: restart the schedule here
            self._due = pts + self.interval
        return True


class VideoSource:
    """One camera's decoder: `start()` runs it on a thread, frames go into `ring`.

    `state` is starting, streaming, reconnecting (live only), then stopped or failed; `on_state(state, error)`
    is called once per change, from the decoding thread. When it has ended, `ended` is true, `error` holds a
    one-line message (password redacted) if it failed, and the ring has its end-of-stream signal.
    Nothing raises out of the thread.
    """

    def __init__(
        self,
        camera: str,
        url: str,
        *,
        ring: RingBuffer,
        loop: bool = False,
        realtime: bool = False,
        options: dict[str, str] | None = None,
        format: str | None = None,
        fps: float | None = None,
        timeout: float = OPEN_TIMEOUT_S,
        live: bool | None = None,
        stall_timeout: float = 10.0,
        backoff: Backoff | None = None,
        max_retries: int | None = None,
        hwaccel: str = "none",
        max_bad_packets: int = MAX_BAD_PACKETS,
        max_bad_bytes: int = MAX_BAD_BYTES,
        on_state: StateCallback | None = None,
    ) -> None:
        self.camera = camera
        self.url = url
        self.loop = loop
        self.realtime = realtime and not is_live(url, live)  # a live source is paced by the camera itself
        self.options = dict(options or {})
        self.format = format
        self.ring = ring
        self.fps = fps
        self.timeout = timeout
        self.live = is_live(url, live)
        self.stall_timeout = stall_timeout
        self.backoff = backoff or Backoff()
        self.max_retries = max_retries
        self.hwaccel = hwaccel
        self.max_bad_packets = max_bad_packets
        self.max_bad_bytes = max_bad_bytes
        self.on_state = on_state
        self.state = "starting"
        self.reconnects = 0  # reconnect attempts (live)
        self.frames_decoded = 0
        self.frames_skipped = 0  # decoded but not published because of `fps`
        self.bad_packets = 0  # packets the decoder (or demuxer) refused: skipped, not fatal
        self.source_fps: float | None = None
        self.width = 0
        self.height = 0
        self.error: str | None = None
        self._ended = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hw_warned = False
        # the current burst of refused packets (since the last decoded frame)
        self._burst_packets = 0
        self._burst_bytes = 0
        self._burst_reason = ""
        # pts bookkeeping: pts keep increasing across file loops, reconnects and camera clock resets
        self._pts_offset = 0.0
        self._last_pts: float | None = None
        self._last_raw: float | None = None
        self._last_wall = 0.0
        self._rebase = False
        self._clock: float | None = None  # realtime: monotonic time minus pts of the frames being paced

    @classmethod
    def from_config(
        cls,
        camera: str,
        cfg: SourceConfig,
        *,
        ring: RingBuffer,
        fps: float | None = None,
        on_state: StateCallback | None = None,
    ) -> VideoSource:
        """Build from a `SourceConfig` (streamseg.config.source)."""
        args = open_args(
            cfg.url,
            timeout=cfg.timeout,
            transport=cfg.transport,
            format=cfg.format,
            video_size=cfg.video_size,
            framerate=cfg.framerate,
            input_format=cfg.input_format,
            live=cfg.is_live,
            extra=cfg.options,
        )
        rc = cfg.reconnect
        return cls(
            camera,
            cfg.url,
            ring=ring,
            loop=cfg.loop,
            realtime=cfg.realtime,
            options=args.options,
            format=args.format,
            fps=fps,
            timeout=cfg.timeout,
            live=cfg.is_live,
            stall_timeout=cfg.stall_timeout,
            backoff=Backoff(rc.initial, rc.max, rc.jitter),
            max_retries=rc.max_retries,
            hwaccel=cfg.hwaccel,
            on_state=on_state,
        )

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the source has ended; False on timeout."""
        return self._ended.wait(timeout)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"source:{self.camera}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop decoding; frames already in the ring stay there for the consumer to drain."""
        self._stop.set()
        if self.live:
            # A live read may block up to stall_timeout: end the stream for the consumer now, the thread follows.
            self.ring.end()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._thread = None

    # -- decoding thread ---------------------------------------------------------------------------
    def _set_state(self, state: str, error: str | None = None) -> None:
        if state == self.state:
            return
        self.state = state
        if self.on_state is not None:
            try:
                self.on_state(state, error)
            except Exception:  # a broken listener must not kill the camera
                log.exception("camera %r: state listener failed", self.camera)

    def _run(self) -> None:
        try:
            if self.live:
                self._run_live()
            else:
                self._session()
        except _Stopped:
            pass
        except Exception as exc:  # any failure ends this camera only, as one readable line
            self.error = describe_error(self.url, exc)  # logged once, by whoever owns the source
        finally:
            self._set_state("failed" if self.error else "stopped", self.error)
            self._ended.set()
            self.ring.end()

    def _run_live(self) -> None:
        """Sessions until stop(): every drop, stall or error leads to a reconnect after a backoff wait."""
        failures = 0
        while not self._stop.is_set():
            decoded_before = self.frames_decoded
            try:
                self._session()
                error = f"{redact_url(self.url)}: end of stream"
            except (_Stopped, KeyboardInterrupt):
                raise
            except Exception as exc:  # a timeout arrives here as a StallError (see _open, _decode_pass)
                error = describe_error(self.url, exc)
            if self._stop.is_set():
                return
            if self.frames_decoded > decoded_before:  # it worked for a while: a fresh start for the backoff
                failures = 0
                self.backoff.reset()
            failures += 1
            if self.max_retries is not None and failures > self.max_retries:
                self.error = f"{error} (gave up after {self.max_retries} retries)"
                return
            self._set_state("reconnecting", error)
            delay = self.backoff.next()
            log.debug("camera %r: %s; attempt %d in %.1f s", self.camera, error, failures, delay)
            if self._stop.wait(delay):
                return
            self.reconnects += 1

    def _open(self) -> av.container.InputContainer:
        read_timeout = self.stall_timeout if self.live else self.timeout
        started = time.monotonic()
        try:
            return av.open(self.url, format=self.format, options=self.options, timeout=(self.timeout, read_timeout))
        except av.FFmpegError as exc:
            if _timed_out(exc, time.monotonic() - started, self.timeout):
                raise StallError(f"timed out opening the stream (no answer within {self.timeout:g} s)") from exc
            raise

    def _session(self) -> None:
        """Open, decode until end of stream (or stop), close. Raises on errors and, when live, on a stall."""
        with self._open() as container:
            stream = _video_stream(container)
            # Frame threads are several times faster on files but hold back one frame per thread: live uses slices.
            stream.thread_type = "SLICE" if self.live else "AUTO"
            decoder, warning = open_decoder(stream, self.hwaccel)
            if warning and not self._hw_warned:
                log.warning("camera %r: %s", self.camera, warning)
                self._hw_warned = True
            rate = stream.average_rate
            self.source_fps = float(rate) if rate else self.source_fps
            gate = FpsGate(self.fps, self.source_fps)
            self._rebase = True  # a new session (reconnect) may restart pts anywhere
            self._last_raw = None
            try:
                while not self._stop.is_set():
                    decoded_before = self.frames_decoded
                    self._decode_pass(container, stream, decoder, gate)
                    if not self.loop or self.live or self.frames_decoded == decoded_before:
                        break  # end of stream (a pass with no frame never loops)
                    # Loop a file: rewind, and reset the decoder that drained itself at end of file.
                    container.seek(0)
                    decoder.flush_buffers()
                    self._rebase = True
                    self._last_raw = None
            finally:
                self._end_burst()
        if not self.live and self.frames_decoded == 0 and self.bad_packets and not self._stop.is_set():
            raise GaveUpError(
                f"no frame could be decoded ({self.bad_packets} undecodable packets: {self._burst_reason})"
            )

    def _decode_pass(
        self, container: av.container.InputContainer, stream: av.VideoStream, decoder: av.CodecContext, gate: FpsGate
    ) -> None:
        """Decode from where the container stands to the end of the input, skipping what cannot be decoded."""
        read_limit = min(self.timeout, self.stall_timeout) if self.live else self.timeout
        last_frame = time.monotonic()
        demux_errors, demux_error = 0, None
        while True:
            reading = time.monotonic()
            try:
                for packet in container.demux(stream):
                    if demux_errors and packet.size:  # the demuxer found its feet again: what it lost was skipped
                        for _ in range(demux_errors):
                            self._skip(demux_error, 0)
                        demux_errors = 0
                    try:
                        frames = decoder.decode(packet)
                    except av.FFmpegError as exc:  # a damaged packet: skip it, as the ffmpeg CLI does
                        self._skip(exc, packet.size)
                        frames = []
                    for frame in frames:
                        self._end_burst()
                        self._handle(frame, gate)
                        last_frame = time.monotonic()
                    if self._stop.is_set():
                        return
                    if self.live and time.monotonic() - last_frame > self.stall_timeout:
                        raise StallError(self._no_frame(last_frame))
                    reading = time.monotonic()  # a file may have waited for a free slot: not the demuxer's time
                return
            except av.FFmpegError as exc:
                if _timed_out(exc, time.monotonic() - reading, read_limit):
                    if self.live:
                        raise StallError(self._no_frame(last_frame)) from exc
                    raise StallError(f"timed out reading (no data within {self.timeout:g} s)") from exc
                if not isinstance(exc, av.InvalidDataError) or self._stop.is_set():
                    raise
                demux_errors, demux_error = demux_errors + 1, exc
                if demux_errors > DEMUX_RETRIES:  # it cannot go on: the input ends here, as in the ffmpeg CLI
                    if self.live:
                        raise
                    log.warning(
                        "camera %r (%s): the demuxer cannot read on (%s): the file ends here",
                        self.camera, redact_url(self.url), _reason(exc),
                    )  # fmt: skip
                    return

    def _no_frame(self, last_frame: float) -> str:
        waited = time.monotonic() - last_frame
        why = f"{self._burst_packets} undecodable packets: {self._burst_reason}" if self._burst_packets else "stalled"
        return f"no frame for {waited:.1f} s ({why})"

    def _skip(self, exc: BaseException | None, size: int) -> None:
        """Count a refused packet, warn when a burst of them starts; a file gives up after too long a run."""
        self.bad_packets += 1
        if not self._burst_packets:
            self._burst_reason = _reason(exc)
            log.warning(
                "camera %r (%s): skipping undecodable data: %s", self.camera, redact_url(self.url), self._burst_reason
            )
        self._burst_packets += 1
        self._burst_bytes += size
        if not self.live and (self._burst_packets >= self.max_bad_packets or self._burst_bytes >= self.max_bad_bytes):
            raise GaveUpError(
                f"gave up after {self._burst_packets} undecodable packets in a row (nothing decoded from "
                f"{self._burst_bytes / 1e6:.1f} MB): {self._burst_reason}"
            )

    def _end_burst(self) -> None:
        """A frame decoded again (or the input ended): say how much was skipped."""
        if self._burst_packets:
            size = f" ({self._burst_bytes} bytes)" if self._burst_bytes else ""  # a demuxer error has none
            log.warning(
                "camera %r (%s): skipped %d undecodable packets%s",
                self.camera, redact_url(self.url), self._burst_packets, size,
            )  # fmt: skip
            self._burst_packets = self._burst_bytes = 0

    def _handle(self, frame: av.VideoFrame, gate: FpsGate) -> None:
        capture_ts = time.time()  # when it was decoded, not when a slot came free
        index = self.frames_decoded
        self.frames_decoded += 1
        if self.state != "streaming":
            self._set_state("streaming")
        pts = self._pts(frame)
        if not gate.admit(pts):
            self.frames_skipped += 1
            return
        if self.realtime:
            self._pace(pts)
            capture_ts = time.time()  # a paced file's frame arrives when it is due, as a camera's would
        image = bgr_image(frame)  # swscale writes a new buffer; this is a view of it
        if (image.shape[1], image.shape[0]) != (self.width, self.height):
            if self.width:  # the ring reallocates slots per size; the video sink rescales
                log.info(
                    "camera %r: resolution %dx%d -> %dx%d", self.camera, self.width, self.height, *image.shape[1::-1]
                )
            self.width, self.height = image.shape[1], image.shape[0]
        while True:
            got = self.ring.acquire(image.shape, timeout=_POLL_S)
            if got is not None:
                break
            if self._stop.is_set() or self.ring.closed:
                raise _Stopped
        slot, array = got
        np.copyto(array, image)  # the one copy: into the (possibly pinned) slot
        self.ring.publish(slot, camera=self.camera, index=index, pts=pts, capture_ts=capture_ts)

    def _pace(self, pts: float) -> None:
        """realtime: wait until the frame is due, `pts` seconds after the first one. A reader that fell behind
        (inference slower than the file, a full ring) starts a new clock rather than rush to catch up."""
        now = time.monotonic()
        if self._clock is None or now - (self._clock + pts) > REALTIME_SLACK_S:
            self._clock = now - pts
        due = self._clock + pts - now
        if due > 0 and self._stop.wait(due):
            raise _Stopped

    def _pts(self, frame: av.VideoFrame) -> float:
        """Seconds within the stream, increasing across file loops, reconnects and camera clock resets."""
        period = 1.0 / self.source_fps if self.source_fps else 0.04
        raw = frame.time
        if raw is None:  # no pts (the first RTP frame, some raw streams): one period after the last
            raw = self._last_raw + period if self._last_raw is not None else 0.0
        jumped = self.live and self._last_raw is not None and not (0 <= raw - self._last_raw <= PTS_JUMP_S)
        now = time.monotonic()
        if (self._rebase or jumped) and self._last_pts is not None:
            # Continue after the last frame: one period later for a file loop; for a live source by the
            # wall-clock time that passed (an outage is a gap the tracker should see).
            gap = max(period, now - self._last_wall) if self.live else period
            self._pts_offset = self._last_pts + gap - raw
        self._rebase = False
        pts = raw + self._pts_offset
        self._last_pts, self._last_raw, self._last_wall = pts, raw, now
        return pts
