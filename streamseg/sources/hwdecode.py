"""Pick the decoder: NVDEC (h264_cuvid / hevc_cuvid) when asked and it opens, else FFmpeg's software decoder."""

from __future__ import annotations

import logging

import av

log = logging.getLogger(__name__)

CUDA_DECODERS = {"h264": "h264_cuvid", "hevc": "hevc_cuvid"}


def hw_decoder_name(codec: str, hwaccel: str) -> str | None:
    """The hardware decoder for `codec` under `hwaccel`, or None for software decoding."""
    if hwaccel == "cuda":
        return CUDA_DECODERS.get(codec)
    return None


def open_decoder(stream: av.VideoStream, hwaccel: str) -> tuple[av.CodecContext, str | None]:
    """The codec context to decode `stream` with, and a warning when hardware decoding was asked for but
    could not be had (no such decoder for the codec, FFmpeg built without it, no GPU or driver)."""
    software = stream.codec_context
    if hwaccel == "none":
        return software, None
    codec = software.name
    name = hw_decoder_name(codec, hwaccel)
    if name is None:
        return software, f"no {hwaccel} decoder for {codec}: decoding in software"
    try:
        ctx = av.CodecContext.create(name, "r")
        if software.extradata:
            ctx.extradata = software.extradata  # SPS/PPS from the container (MP4, RTSP's SDP)
        ctx.open()  # fails here, not at the first packet, when there is no GPU or driver
    except (av.FFmpegError, ValueError, OSError) as exc:
        return software, f"{name} unavailable ({exc}): decoding {codec} in software"
    return ctx, None
