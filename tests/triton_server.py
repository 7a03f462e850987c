"""A real Triton Inference Server for the tests: the `tritonserver` binary bundled in the nvidia-pytriton wheel,
serving an ONNX model from a PyTriton callable that runs onnxruntime (CPU).

    .venv-triton/bin/python tests/triton_server.py MODEL.onnx GRPC_PORT [--name yolov8n-seg] [--no-metadata]
                                                   [--ready-file PATH]

Run by the venv tools/setup-triton.sh makes from the system python (/usr/bin/python3): PyTriton's bundled
Python backend stub needs that interpreter. The model is served under --name with dynamic batching (up to 8
requests), and its Ultralytics metadata (names, imgsz, stride, task) is put in the model config's `metadata`
parameter, as Ultralytics' Triton guide does, unless --no-metadata. Once the model is loaded it prints "READY"
and creates --ready-file (tritonserver logs to stdout too, so a reader may prefer the file).
SIGTERM / SIGINT stop it. This file is not imported by pytest (pytriton is not in the test venv).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.models.model import Model
from pytriton.triton import Triton, TritonConfig


def dims(shape: list) -> tuple[int, ...]:
    """A tensor's shape without its batch axis (Triton adds it), a named axis as -1."""
    return tuple(d if isinstance(d, int) else -1 for d in shape[1:])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("port", type=int, help="gRPC port; HTTP and metrics use the next two")
    parser.add_argument("--name", default="yolov8n-seg")
    parser.add_argument("--no-metadata", action="store_true")
    parser.add_argument("--ready-file")
    args = parser.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    # Idle threads must not busy-wait: on a test machine the server shares its cores with the daemon.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(args.model, sess_options=options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    outputs = session.get_outputs()
    names = [o.name for o in outputs]
    static_batch = isinstance(inp.shape[0], int)
    metadata = dict(session.get_modelmeta().custom_metadata_map)

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        images = inputs[inp.name]
        if static_batch:  # a fixed-batch graph runs the batch Triton gathered one image at a time
            results = [session.run(names, {inp.name: images[i : i + 1]}) for i in range(len(images))]
            return {n: np.concatenate([r[k] for r in results]) for k, n in enumerate(names)}
        return dict(zip(names, session.run(names, {inp.name: images}), strict=True))

    if not args.no_metadata:  # PyTriton has no option for model config parameters: add ours to the ones it writes
        generate = Model._get_triton_model_config
        text = json.dumps({k: v for k, v in metadata.items() if k in ("names", "imgsz", "stride", "task", "batch")})

        def with_metadata(self: Model):  # noqa: ANN202
            config = generate(self)
            config.backend_parameters["metadata"] = text
            return config

        Model._get_triton_model_config = with_metadata

    config = TritonConfig(
        grpc_address="127.0.0.1",
        grpc_port=args.port,
        http_address="127.0.0.1",
        http_port=args.port + 1,
        metrics_port=args.port + 2,
        allow_metrics=False,
        log_verbose=0,
    )
    triton = Triton(config=config)
    triton.bind(
        model_name=args.name,
        infer_func=infer,
        inputs=[Tensor(name=inp.name, dtype=np.float32, shape=dims(inp.shape))],
        outputs=[Tensor(name=o.name, dtype=np.float32, shape=dims(o.shape)) for o in outputs],
        config=ModelConfig(max_batch_size=8, batcher=DynamicBatcher(max_queue_delay_microseconds=1000)),
        strict=False,
    )
    triton.run()
    print("READY", flush=True)
    if args.ready_file:
        open(args.ready_file, "w").close()

    def stop(*_: object) -> None:
        triton.stop()
        sys.exit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    triton.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
