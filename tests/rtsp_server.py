"""A real RTSP server for the tests: GStreamer's gst-rtsp-server, run with the SYSTEM python (python3-gi).

    /usr/bin/python3 tests/rtsp_server.py PORT [--media FILE]

Mount points:
  /test   a live videotestsrc (320x240, 25 fps), H.264 (x264enc, zerolatency)
  /bikes  FILE (an MP4 with H.264) re-streamed as it is (no re-encoding), paced in real time, ONCE per
          client: at its end the server ends the stream (a client that reconnects starts it again)
  /hd     like /test at 640x480 (for resolution-change tests)
  /push, /push2  with --record DIR: RECORD mode (clients ANNOUNCE + RECORD an H.264 stream, as to MediaMTX);
          each publish is saved as it arrives, unchanged, to DIR/<mount>-<pid>-<n>.ts (n counts the publishes
          of this server process, from 1), which a test reads back with PyAV

Prints "READY" on stdout once it listens. SIGTERM / SIGINT stop it.
This file is not imported by pytest (it needs gi, which the venv does not have).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

TESTSRC = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate=25/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=800 "
    "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
RECORD = "( rtph264depay name=depay0 ! h264parse ! mpegtsmux ! filesink name=sink sync=false buffer-mode=unbuffered )"
FILE = "( filesrc location={path} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--media", help="an MP4 (H.264) served at /bikes")
    parser.add_argument("--record", help="a folder: /push and /push2 accept RECORD, saved there as .ts")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    launches = {"/test": TESTSRC.format(w=320, h=240), "/hd": TESTSRC.format(w=640, h=480)}
    if args.media:
        launches["/bikes"] = FILE.format(path=args.media)
    for path, launch in launches.items():
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        # Live test sources: one pipeline shared by every client. The file: one per client, from its start.
        factory.set_shared(path != "/bikes")
        mounts.add_factory(path, factory)
    if args.record:
        publishes = {"n": 0}

        def configure(_factory: object, media: object, mount: str) -> None:
            publishes["n"] += 1
            sink = media.get_element().get_by_name("sink")
            sink.set_property("location", f"{args.record}/{mount}-{os.getpid()}-{publishes['n']}.ts")

        for mount in ("push", "push2"):
            factory = GstRtspServer.RTSPMediaFactory()
            factory.set_launch(RECORD)
            factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
            factory.connect("media-configure", configure, mount)
            mounts.add_factory(f"/{mount}", factory)
        # Without this the one default thread serves the publisher's TCP session and nothing else gets a turn.
        server.get_thread_pool().set_max_threads(-1)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
