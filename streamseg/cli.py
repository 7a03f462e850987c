"""Command line: run, validate, predict, val, export, bench, tail."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from streamseg import __version__
from streamseg.errors import ConfigError, StreamsegError
from streamseg.vocab import ExportFormat, MaskFormat

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(getattr(args, "log_level", None) or "info")
    try:
        return args.func(args)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    except StreamsegError as exc:
        print(f"streamseg: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamseg", description=__doc__)
    parser.add_argument("--version", action="version", version=f"streamseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon on a config file")
    run.add_argument("config", type=Path)
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=_run)

    validate = sub.add_parser("validate", help="check a config file without connecting to anything")
    validate.add_argument("config", type=Path)
    validate.set_defaults(func=_validate)

    predict = sub.add_parser("predict", help="segment an image or a video and print JSON")
    predict.add_argument("--model", required=True, help="model file (.onnx, .engine) or model ID")
    predict.add_argument("--source", required=True, type=Path, help="image or video file")
    predict.add_argument("--imgsz", type=int, help="network input size (default: from the model)")
    predict.add_argument("--conf", type=float, default=0.25, help="minimum score (default 0.25)")
    predict.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    predict.add_argument("--max-det", type=int, default=300, help="most detections per image (default 300)")
    predict.add_argument("--agnostic-nms", action="store_true", help="NMS across classes")
    predict.add_argument("--mask-format", choices=list(MaskFormat), default=MaskFormat.POLYGON)
    predict.add_argument("--threads", type=int, help="onnxruntime intra-op threads")
    predict.add_argument("--out", default="-", help="output file, or - for stdout (default)")
    predict.set_defaults(func=_predict)

    val = sub.add_parser("val", help="box and mask mAP of a model on a COCO-format or YOLO-seg dataset")
    val.add_argument("--model", required=True, help="model file (.onnx, .engine, .torchscript) or model ID")
    val.add_argument("--data", required=True, type=Path, help="dataset folder: annotations.json or data.yaml")
    val.add_argument("--imgsz", type=int, help="network input size (default: from the model)")
    val.add_argument("--conf", type=float, default=0.001, help="minimum score (default 0.001, as Ultralytics' val)")
    val.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    val.add_argument("--max-det", type=int, default=300, help="most detections per image (default 300)")
    val.add_argument("--threads", type=int, help="onnxruntime intra-op threads")
    val.add_argument("--json", action="store_true", help="print the mAPs as one JSON object")
    val.set_defaults(func=_val)

    export = sub.add_parser("export", help="int8 (QDQ) ONNX, TensorRT engine, or ONNX/TorchScript from .pt weights")
    export.add_argument("--model", required=True, help="model file (.onnx, or Ultralytics .pt) or model ID")
    export.add_argument("--format", required=True, choices=list(ExportFormat), help="what to write")
    export.add_argument("--half", action="store_true", help="fp16 (TensorRT engine; Ultralytics export)")
    export.add_argument("--int8", action="store_true", help="int8: a QDQ ONNX for CPUs, or an int8 TensorRT engine")
    export.add_argument(
        "--calib", type=Path, metavar="VIDEO_OR_DIR", help="video or image folder to calibrate --int8 on"
    )
    export.add_argument("--calib-frames", type=int, default=100, help="frames taken from --calib (default 100)")
    export.add_argument(
        "--float-head",
        choices=["branches", "decode"],
        default="branches",
        help="--int8 on ONNX: what stays float, the decode and the box/class branches (default) or the decode only "
        "(faster, scores further from fp32; see docs/models.md)",
    )
    export.add_argument("--batch", type=int, default=1, help="largest batch of a TensorRT engine (default 1)")
    export.add_argument("--imgsz", type=int, help="input size of an export from .pt weights (Ultralytics' default)")
    export.add_argument("--out", type=Path, help="output file (default: beside the model / the engine cache)")
    export.set_defaults(func=_export)

    bench = sub.add_parser("bench", help="pipeline throughput against the raw engine, same run")
    bench.add_argument("--model", required=True, help="model file or ID")
    bench.add_argument("--source", required=True, type=Path, help="video file")
    bench.add_argument("--cameras", type=int, default=1, help="file cameras on the video at once (default 1)")
    bench.add_argument("--batch-size", type=int, default=1, help="frames per engine call (default 1)")
    bench.add_argument("--workers", default="auto", help="engine calls in flight: auto or a number (default auto)")
    bench.add_argument("--threads", type=int, help="onnxruntime threads per worker (default: cores / workers)")
    bench.add_argument("--backend", default="auto", help="model.backend (default auto: from the file)")
    bench.add_argument("--device", default="auto", help="model.device: auto, cpu, cuda or cuda:N (default auto)")
    bench.add_argument("--frames", type=int, default=0, help="stop each camera after this many frames (0: all)")
    bench.add_argument("--repeat", type=int, default=1, help="measure this many times; medians (default 1)")
    bench.add_argument("--no-video", action="store_true", help="leave out the annotated-video sink")
    bench.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    bench.set_defaults(func=_bench)

    tail = sub.add_parser("tail", help="print track events from the MQTT broker, one line each")
    tail.add_argument("--config", type=Path, help="take broker, prefix and credentials from this config file")
    tail.add_argument("--host", help="broker host (default: the config's, else 127.0.0.1)")
    tail.add_argument("--port", type=int, help="broker port (default: the config's, else 1883)")
    tail.add_argument("--prefix", help="topic prefix (default: the config's, else streamseg)")
    tail.add_argument("--camera", help="only this camera (default: all)")
    tail.add_argument("--limit", type=int, default=0, help="exit after this many events (default: never)")
    tail.set_defaults(func=_tail)
    return parser


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _validate(args: argparse.Namespace) -> int:
    from streamseg.config import load_config

    config = load_config(args.config)
    cams = ", ".join(config.cameras)
    print(f"{args.config}: valid ({len(config.cameras)} camera(s): {cams})")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    import faulthandler

    from streamseg.config import load_config
    from streamseg.daemon import Daemon

    faulthandler.enable()  # a fatal signal (the systemd watchdog's SIGABRT) prints every thread's stack first
    config = load_config(args.config)
    if args.log_level is None:
        logging.getLogger().setLevel(config.log_level.upper())
    return Daemon(config, args.config, log_level=args.log_level).run()


def _predict(args: argparse.Namespace) -> int:
    from streamseg.predict import predict

    return predict(args)


def _val(args: argparse.Namespace) -> int:
    from streamseg.val import val

    return val(args)


def _export(args: argparse.Namespace) -> int:
    from streamseg.export import export

    return export(args)


def _bench(args: argparse.Namespace) -> int:
    from streamseg.bench import bench

    return bench(args)


def _tail(args: argparse.Namespace) -> int:
    from streamseg.tail import Tail

    settings: dict = {}
    host, port, prefix = "127.0.0.1", 1883, "streamseg"
    if args.config is not None:
        from streamseg.config import load_config
        from streamseg.sinks.mqtt.transport import client_settings

        mqtt = load_config(args.config, check_models=False).mqtt
        if mqtt is None:
            raise StreamsegError(f"{args.config}: has no mqtt section")
        host, port, prefix = mqtt.host, mqtt.port, mqtt.topic_prefix
        settings = client_settings(mqtt)
    tail = Tail(
        args.host or host,
        args.port or port,
        prefix=args.prefix or prefix,
        camera=args.camera,
        limit=args.limit,
        **settings,
    )
    return tail.run()


if __name__ == "__main__":
    raise SystemExit(main())
