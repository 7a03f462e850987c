"""Write tests/data/ultralytics_reference.json: Ultralytics' own predictions for the parity tests.

Run it with a Python that has ultralytics, torch, onnxruntime and pycocotools (never streamseg's
runtime venv: torch is not a runtime dependency), e.g.:

    python3 -m venv /tmp/ultra && /tmp/ultra/bin/pip install ultralytics onnxruntime pycocotools
    /tmp/ultra/bin/python tools/make_reference.py --shared ../shared

For each (model, image) it runs `YOLO(onnx, task=...).predict(image, imgsz=320, conf=0.25, iou=0.7)`
with the default retina_masks=False and records class ids, scores, xyxy boxes in original-image
pixels (`result.boxes.xyxy`) and, for segment models, one mask per detection in original-image
pixels as a COCO RLE (pycocotools, counts as a string). Masks: `result.masks.data` is the
input-resolution (320x320, letterboxed) binary mask from ops.process_mask(upsample=True); it is
mapped to the original image with `ultralytics.utils.ops.scale_masks` (crop the letterbox padding,
bilinear resize to the image size: what Ultralytics does to draw masks on the original image) and
thresholded at 0.5.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

CASES = [
    ("yolov8n-seg-320-int8.onnx", "segment", "bus.jpg"),
    ("yolov8n-seg-320-int8.onnx", "segment", "zidane.jpg"),
    ("yolov8n-320-int8.onnx", "detect", "bus.jpg"),
    ("yolov8n-320-int8.onnx", "detect", "zidane.jpg"),
]
ARGS = {"imgsz": 320, "conf": 0.25, "iou": 0.7}


def main() -> None:
    import cv2
    import ultralytics
    from pycocotools import mask as mask_utils
    from ultralytics import YOLO
    from ultralytics.utils import ops

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/data/ultralytics_reference.json"
    )
    args = parser.parse_args()

    results = []
    for model_file, task, image_file in CASES:
        image = cv2.imread(str(args.shared / "media" / image_file))
        model = YOLO(str(args.shared / "models" / model_file), task=task)
        (res,) = model.predict(image, verbose=False, device="cpu", **ARGS)
        entry = {
            "model": model_file,
            "task": task,
            "image": image_file,
            "image_shape": list(image.shape[:2]),
            "class_ids": res.boxes.cls.int().tolist(),
            "scores": [round(float(s), 5) for s in res.boxes.conf],
            "boxes": [[round(float(v), 3) for v in box] for box in res.boxes.xyxy],
        }
        if task == "segment":
            masks = ops.scale_masks(res.masks.data[None].float(), image.shape[:2])[0] > 0.5
            rles = mask_utils.encode(np.asfortranarray(masks.numpy().transpose(1, 2, 0).astype(np.uint8)))
            entry["masks"] = [{"size": r["size"], "counts": r["counts"].decode("ascii")} for r in rles]
        results.append(entry)
        print(model_file, image_file, entry["class_ids"], entry["scores"])

    meta = {"ultralytics": ultralytics.__version__, "predict_args": ARGS, "mask_mapping": "scale_masks > 0.5"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
