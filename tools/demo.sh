#!/usr/bin/env bash
# Set up and run the demo: the real YOLOv8n-seg on ../shared/media/bikes.mp4, with a local MQTT broker.
# Writes out/bikes.mp4 (annotated), out/bikes.jsonl (detections + events) and out/mqtt.log (what a subscriber saw).
#   bash tools/demo.sh --live   instead: the video looped in real time, watched on http://127.0.0.1:8080/
#                               (pipelines/demo-live.yaml; HTTP_PORT=... for another port; Ctrl-C stops it)
#   bash tools/demo.sh --live --rtsp rtsp://127.0.0.1:8554/bikes
#                               also pushes the annotated stream to that RTSP server (MediaMTX, go2rtc)
set -euo pipefail
usage="usage: bash tools/demo.sh [--live [--rtsp rtsp://HOST:PORT/PATH]]"
live="" rtsp=""
while [ $# -gt 0 ]; do
    case "$1" in
        --live) live=1 ;;
        --rtsp) [ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }; rtsp="$2"; live=1; shift ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
    shift
done
cd "$(dirname "$0")/.."
export STREAMSEG_SHARED="${STREAMSEG_SHARED:-$(cd .. && pwd)/shared}"
if [ ! -f "$STREAMSEG_SHARED/models/yolov8n-seg-320.onnx" ]; then
    echo "demo: $STREAMSEG_SHARED/models/yolov8n-seg-320.onnx not found; set STREAMSEG_SHARED" >&2
    exit 1
fi
bash tools/system-deps.sh
bash tools/setup.sh dev
mkdir -p out
# streamseg never overwrites an output (a second run would append to bikes.jsonl and write bikes-1.mp4);
# the demo starts from scratch, so it removes its own previous outputs.
rm -f out/bikes.mp4 out/bikes.jsonl
broker_pid="" sub_pid=""
cleanup() { kill $sub_pid $broker_pid 2>/dev/null || true; }
trap cleanup EXIT
if command -v mosquitto_sub >/dev/null && [ -x /usr/sbin/mosquitto ]; then
    MQTT_PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    export MQTT_HOST=127.0.0.1 MQTT_PORT
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$MQTT_PORT" > out/mosquitto.conf
    # setsid: Ctrl-C (SIGINT to the terminal's process group) must stop only streamseg, which then drains
    # what it still holds to the broker; the broker and the subscriber are stopped after it, by cleanup.
    setsid /usr/sbin/mosquitto -c out/mosquitto.conf >out/mosquitto.log 2>&1 & broker_pid=$!
    sleep 0.5
    setsid mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t 'streamseg/#' -v > out/mqtt.log & sub_pid=$!
    echo "demo: MQTT broker on 127.0.0.1:$MQTT_PORT, subscriber writing out/mqtt.log"
fi
if [ -n "$live" ]; then
    config=pipelines/demo-live.yaml
    if [ -n "$rtsp" ]; then  # the same camera with an RTSP output (the file ends inside cameras.bikes)
        config=out/demo-live-rtsp.yaml
        { cat pipelines/demo-live.yaml; printf '    outputs:\n      rtsp: {url: "%s"}\n' "$rtsp"; } > "$config"
    fi
    .venv/bin/streamseg validate "$config"
    echo "demo: open http://127.0.0.1:${HTTP_PORT:-8080}/ to watch the annotated video live; Ctrl-C stops"
    [ -z "$rtsp" ] || echo "demo: pushing the annotated stream to $rtsp (ffplay -rtsp_transport tcp $rtsp)"
    .venv/bin/streamseg run "$config" || true  # Ctrl-C ends it
    exit 0
fi
.venv/bin/streamseg validate pipelines/demo.yaml
.venv/bin/streamseg run pipelines/demo.yaml
sleep 0.5
if [ -n "$sub_pid" ]; then
    echo "demo: MQTT messages received: $(wc -l < out/mqtt.log) ($(grep -c '/detections ' out/mqtt.log || true) detections, $(grep -c '/events ' out/mqtt.log || true) events)"
fi
echo "demo: wrote out/bikes.mp4 and out/bikes.jsonl"
