"""Config of live sources and metrics: defaults, checks, one line per problem naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamseg.config import load_config
from tests.config.test_loader import BASE, problems, write

LIVE = BASE.replace(
    "{url: video.mp4}", '{url: "rtsp://cam.local/s1", reconnect: {initial: 2, max: 60}, transport: udp}'
)


def test_live_source_fields_and_their_defaults(tmp_path: Path) -> None:
    app = load_config(write(tmp_path, LIVE), check_models=False)
    src = app.cameras["front"].source
    assert (src.transport, src.timeout, src.stall_timeout, src.hwaccel) == ("udp", 10.0, 10.0, "none")
    assert (src.reconnect.initial, src.reconnect.max, src.reconnect.max_retries) == (2, 60, None)
    assert app.metrics_port is None and app.metrics_host == "127.0.0.1"


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ("reconnect: {initial: 2, max: 60}", "reconnect: {initial: 5, max: 1}"),
        ("transport: udp", "transport: sctp"),
        ("transport: udp", "video_size: big"),
        ("transport: udp", "hwaccel: vaapi"),
        ("transport: udp", "stall_timeout: 0"),
    ],
)
def test_bad_live_source_values_name_the_field(tmp_path: Path, patch: str, expected: str) -> None:
    lines = problems(write(tmp_path, LIVE.replace(patch, expected)))
    field = expected.split(":")[0]
    assert len(lines) == 1 and f"cameras.front.source.{field}" in lines[0], lines


def test_metrics_port_range(tmp_path: Path) -> None:
    lines = problems(write(tmp_path, "metrics_port: 70000\n" + BASE))
    assert len(lines) == 1 and lines[0].split(": ", 1)[1].startswith("metrics_port:"), lines
