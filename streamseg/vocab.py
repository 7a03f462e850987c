"""Every state, choice and kind streamseg names, in one place (like paho-mqtt's enums.py).

They are `StrEnum`s: each member equals its string value, so configs, JSON payloads and logs carry the plain
words ("streaming", "drop_oldest") while the code compares against names it cannot misspell.
"""

from __future__ import annotations

from enum import StrEnum


class CameraState(StrEnum):
    """`{prefix}/{camera}/status` state (docs/mqtt.md)."""

    STARTING = "starting"
    STREAMING = "streaming"
    DEGRADED = "degraded"  # frames flow, but one of the camera's outputs is failing (see `error`)
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def final(self) -> bool:
        return self in (CameraState.FAILED, CameraState.STOPPED)


class RingPolicy(StrEnum):
    """What a full ring buffer does when the decoder has a new frame."""

    BLOCK = "block"  # the decoder waits: nothing lost (files)
    DROP_OLDEST = "drop_oldest"  # the oldest waiting frame is dropped: latency stays bounded
    LATEST = "latest"  # as drop_oldest, and inference takes the newest frame, dropping older ones (live cameras)


class MaskFormat(StrEnum):
    POLYGON = "polygon"
    RLE = "rle"
    NONE = "none"


class Backend(StrEnum):
    """What runs the network (`model.backend`); auto picks it from the model file's suffix."""

    AUTO = "auto"
    ONNXRUNTIME = "onnxruntime"
    TENSORRT = "tensorrt"
    TORCHSCRIPT = "torchscript"
    TRITON = "triton"  # a Triton Inference Server runs it; decoding, tracking and publishing stay here


class Precision(StrEnum):
    """Arithmetic a TensorRT engine is built for (native TensorRT and onnxruntime's TensorRT provider)."""

    FP16 = "fp16"
    FP32 = "fp32"
    INT8 = "int8"  # needs calibration frames


class ExportFormat(StrEnum):
    """What `streamseg export --format` writes."""

    ONNX = "onnx"  # with --int8: a static int8 (QDQ) ONNX for CPUs
    TORCHSCRIPT = "torchscript"  # from Ultralytics .pt weights
    ENGINE = "engine"  # a TensorRT engine (cached like the daemon's)


class Provider(StrEnum):
    """onnxruntime execution providers, by their short names."""

    TENSORRT = "tensorrt"
    CUDA = "cuda"
    CPU = "cpu"


class TrackerType(StrEnum):
    BYTETRACK = "bytetrack"
    BOTSORT = "botsort"
    OCSORT = "ocsort"
    SORT = "sort"
    NONE = "none"


class Task(StrEnum):
    """What a model predicts (the Ultralytics metadata's `task`)."""

    DETECT = "detect"
    SEGMENT = "segment"
    POSE = "pose"  # boxes and keypoints
    MULTITASK = "multitask"  # the seeds' seg+pose head: boxes, masks and keypoints


class EventType(StrEnum):
    NEW = "new"
    UPDATE = "update"
    END = "end"


class SourceKind(StrEnum):
    """What a source URL is; decides the FFmpeg options and whether the source is live."""

    FILE = "file"
    RTSP = "rtsp"
    HTTP = "http"  # progressive streams (MJPEG, MPEG-TS) and HLS playlists alike
    V4L2 = "v4l2"
    STREAM = "stream"  # rtmp, udp, tcp, srt


class VideoEncoder(StrEnum):
    """H.264 encoder of the annotated outputs (`outputs.*.encoder`); auto: NVENC when it opens, else libx264."""

    AUTO = "auto"
    LIBX264 = "libx264"
    H264_NVENC = "h264_nvenc"


class RtspTransport(StrEnum):
    """How an RTSP output sends its packets to the server."""

    TCP = "tcp"  # interleaved in the RTSP connection: passes firewalls and NAT, no loss
    UDP = "udp"
