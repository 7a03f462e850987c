"""What the HTTP server's live view costs a camera (a benchmark, not a test).

    .venv/bin/python tools/live_view_bench.py [--repeat 3] [--model M.onnx] [--source bikes.mp4]

Each repeat runs, one after the other, the same file camera (looped, every frame, as fast as inference goes; timed
over frames 50 to 450, after the start) three ways:
without `http:`, with `http:` and nobody watching, and with one MJPEG viewer reading /cameras/{name}/mjpeg at
`live_fps: 25`. It prints each run's frames per second, the medians, the throughput of each mode as a ratio of
the no-http run of the same repeat, and the live output's own costs: its per-frame bookkeeping (ms on its thread)
and annotating + encoding one JPEG (ms, on the viewer's thread).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamseg.config import load_config  # noqa: E402
from streamseg.daemon import Daemon  # noqa: E402
from tests.mqtt_broker import free_port  # noqa: E402

SHARED = REPO.parent / "shared"
MODES = ("no http", "http, idle", "http, 1 viewer")
WARMUP, FRAMES = 50, 400  # frames processed before timing starts, and timed


def config(model: Path, source: Path, port: int | None) -> str:
    http = f"http: {{port: {port}, live_fps: 25}}\n" if port else ""
    return f"""{http}
defaults:
  model: {{path: {model}}}
  tracker: {{type: bytetrack}}
cameras:
  cam:
    source: {{url: {source}, loop: true}}
    zones:
      road: {{points: [[0, 130], [640, 130], [640, 272], [0, 272]], min_overlap: 0.3}}
    lines:
      middle: {{start: [320, 0], end: [320, 272], anchor: centroid}}
"""


def viewer(url: str, stop: threading.Event, parts: list[int]) -> None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            while not stop.is_set():
                chunk = response.read1(65536)
                if not chunk:
                    return
                parts[0] += chunk.count(b"--streamseg-frame")
    except OSError:
        return


def run(model: Path, source: Path, mode: str, workdir: Path) -> dict:
    """The camera's steady rate: frames WARMUP to WARMUP + FRAMES (the file loops), timed by polling."""
    port = free_port() if mode != "no http" else None
    path = workdir / f"{mode.replace(' ', '_').replace(',', '')}.yaml"
    path.write_text(config(model, source, port))
    daemon = Daemon(load_config(path), path)
    stop, parts = threading.Event(), [0]
    thread = threading.Thread(target=daemon.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    daemon.started.wait(60)
    if mode == "http, 1 viewer":
        url = f"http://127.0.0.1:{port}/cameras/cam/mjpeg"
        threading.Thread(target=viewer, args=(url, stop, parts), daemon=True).start()
    camera = daemon.cameras["cam"]
    live = next((s for s in camera.sinks if s.kind == "live"), None)
    marks = {}
    for target in (WARMUP, WARMUP + FRAMES):
        while camera.stats.frames < target:
            time.sleep(0.005)
        marks[target] = (time.perf_counter(), live.busy_s if live else 0.0, live.written if live else 0)
        marks[target] += (live.encode_s if live else 0.0, live.encoded if live else 0, parts[0])
    daemon.stop()
    thread.join()
    stop.set()
    (t0, busy0, n0, enc0, jpegs0, parts0), (t1, busy1, n1, enc1, jpegs1, parts1) = marks.values()
    out = {"fps": FRAMES / (t1 - t0), "frames": FRAMES, "parts": parts1 - parts0}
    if live is not None:
        out["bookkeeping_ms"] = 1000 * (busy1 - busy0) / max(n1 - n0, 1)
        out["jpegs"] = jpegs1 - jpegs0
        out["jpeg_ms"] = 1000 * (enc1 - enc0) / out["jpegs"] if out["jpegs"] else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "yolov8n-seg-320.onnx")
    parser.add_argument("--source", type=Path, default=SHARED / "media" / "bikes.mp4")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for mode in MODES:
                r = run(args.model, args.source, mode, Path(tmp))
                results[mode].append(r)
                extra = ""
                if "bookkeeping_ms" in r:
                    extra = f"  live output {r['bookkeeping_ms']:.3f} ms/frame"
                if r.get("jpeg_ms"):
                    extra += f", {r['jpegs']} JPEGs at {r['jpeg_ms']:.2f} ms, {r['parts']} MJPEG parts read"
                print(f"repeat {i + 1} {mode:15s} {r['frames']} frames {r['fps']:6.2f} fps{extra}", flush=True)
    print()
    base = results["no http"]
    for mode in MODES:
        fps = statistics.median(r["fps"] for r in results[mode])
        ratio = statistics.median(r["fps"] / b["fps"] for r, b in zip(results[mode], base, strict=True))
        line = f"median {mode:15s} {fps:6.2f} fps  ratio to no http (same repeat) {ratio:.3f}"
        costs = [r["bookkeeping_ms"] for r in results[mode] if "bookkeeping_ms" in r]
        if costs:
            line += f"  live output {statistics.median(costs):.3f} ms/frame"
        jpegs = [r["jpeg_ms"] for r in results[mode] if r.get("jpeg_ms")]
        if jpegs:
            line += f"  JPEG {statistics.median(jpegs):.2f} ms"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
