"""Capture -> publish latency of a live camera over a long run: does it stay bounded? (A benchmark, not a test.)

    .venv/bin/python tools/latency_bench.py --minutes 10 [--url rtsp://...] [--fps N] [--model M.onnx]

Without --url it starts the test RTSP server (tests/rtsp_server.py, GStreamer, system python) and reads its
live 25 fps videotestsrc stream. The daemon runs in this process with a JSON-lines output; every line carries
`capture_ts` (frame decoded) and `publish_ts` (line written). Prints, per minute: frames processed, latency
percentiles (ms), and frames dropped by the ring buffer (inference behind the camera), then the whole run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamseg.config import load_config  # noqa: E402
from streamseg.daemon import Daemon  # noqa: E402


def percentiles(values: list[float]) -> str:
    if not values:
        return "no frames"
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return f"p50 {p50:6.1f}  p90 {p90:6.1f}  p99 {p99:6.1f}  max {max(values):6.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--url", help="a live source; default: the test RTSP server's /test stream")
    parser.add_argument("--fps", type=float, help="camera fps limit (default: every frame)")
    parser.add_argument("--model", default=str(REPO.parent / "shared" / "models" / "yolov8n-seg-320.onnx"))
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its default)")
    args = parser.parse_args()

    server = None
    url = args.url
    if url is None:
        from tests.rtsp import RtspServer, gst_rtsp_available

        if not gst_rtsp_available():
            print("GStreamer's RTSP server is not installed (tools/system-deps.sh); pass --url", file=sys.stderr)
            return 2
        server = RtspServer()
        server.start()
        url = server.url("test")

    work = Path(tempfile.mkdtemp(prefix="latency-bench-"))
    config = work / "bench.yaml"
    model = f"{{path: {args.model}" + (f", threads: {args.threads}" if args.threads else "") + "}"
    config.write_text(
        f"""
defaults:
  model: {model}
cameras:
  cam:
    source: {{url: "{url}"}}
    {f"fps: {args.fps}" if args.fps else ""}
    outputs: {{jsonl: {{path: out.jsonl}}}}
"""
    )
    daemon = Daemon(load_config(config), config)
    runner = threading.Thread(target=daemon.run, kwargs={"handle_signals": False}, daemon=True)
    runner.start()
    start = time.time()
    dropped_at: list[int] = []  # ring drops at the end of each minute
    try:
        minutes = int(np.ceil(args.minutes))
        for m in range(minutes):
            end = start + min(args.minutes, m + 1) * 60
            while time.time() < end:
                time.sleep(0.5)
            cam = daemon.cameras.get("cam")
            dropped_at.append(cam.dropped if cam else 0)
            print(
                f"minute {m + 1}: {cam.stats.frames if cam else 0} frames so far, state {cam and cam.state}", flush=True
            )
    finally:
        daemon.stop()
        runner.join(60)
        if server is not None:
            server.stop()

    cam = daemon.cameras["cam"]
    lines = [json.loads(line) for line in (work / "out.jsonl").read_text().splitlines()]
    frames = [obj for obj in lines if obj["topic"] == "detections"]
    by_minute: dict[int, list[float]] = {}
    for f in frames:
        minute = min(int((f["capture_ts"] - start) // 60), len(dropped_at) - 1)  # the last frames join the last minute
        by_minute.setdefault(minute, []).append(1000 * (f["publish_ts"] - f["capture_ts"]))
    print(
        f"\nsource {url}; {args.minutes:g} min; decoded {cam.source.frames_decoded}, processed {len(frames)}, "
        f"dropped {cam.dropped}, reconnects {cam.reconnects}; inference {cam.times.ms('infer'):.1f} ms"
    )
    previous = 0
    for m in sorted(by_minute):
        dropped = (dropped_at[m] if m < len(dropped_at) else cam.dropped) - previous
        previous += dropped
        print(f"minute {m + 1:3d}: {len(by_minute[m]):6d} frames  {percentiles(by_minute[m])}  dropped {dropped}")
    print(f"whole run : {len(frames):6d} frames  {percentiles([v for vs in by_minute.values() for v in vs])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
