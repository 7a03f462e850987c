"""Write tests/data/val_fixture/annotations.json: a COCO-format dataset of real frames, labelled by the fp32 model.

    .venv/bin/python tools/make_val_fixture.py [--shared ../shared] [--review out/val_fixture_review]

The images are bus.jpg, zidane.jpg and frames 0, 25, 50, ..., 225 and 249 of bikes.mp4 (tests/val_fixture.py puts
them beside the annotations at test time; they are never committed). Each image is labelled with the predictions
of ../shared/models/yolov8n-seg-320.onnx through `streamseg predict`'s path at its defaults (conf 0.25, iou 0.7):
class, box (COCO xywh, image pixels) and mask (its largest outer contour as a COCO polygon, simplified to 1 px).
Categories are the model's 80 COCO names with COCO's own category ids (1..90), so the fixture reads like a slice of
instances_val2017.json. `--review DIR` also draws every label on its image for a person to check (the committed file
was reviewed that way: every box sits on the object it names).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# COCO's 80 category ids in the order of the 80 Ultralytics classes (ids 12, 26, 29, 30, 45, 66, 68, 69, 71 and 83
# are unused in the COCO files)
COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33,
            34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
            62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]  # fmt: skip


def main() -> None:
    import cv2
    import numpy as np
    import supervision as sv

    from streamseg.engines import create_engine
    from streamseg.models import YoloModel
    from streamseg.sinks.serialize import crop_polygon
    from tests.val_fixture import ANNOTATIONS, BIKES_FRAMES, IMAGES, bikes_name, materialize

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--review", type=Path, help="also write each image with its labels drawn to this folder")
    args = parser.parse_args()
    folder = materialize(args.shared / "media", Path("/tmp/streamseg-val-fixture"), annotations=None)
    engine = create_engine(args.shared / "models" / "yolov8n-seg-320.onnx", providers=["cpu"])
    model = YoloModel(engine.info)
    names = [*IMAGES, *(bikes_name(i) for i in BIKES_FRAMES)]
    coco = {
        "info": {"description": "streamseg val fixture: fp32 yolov8n-seg-320 predictions (conf 0.25) on shared media"},
        "images": [],
        "annotations": [],
        "categories": [{"id": COCO_IDS[c], "name": n} for c, n in sorted(model.names.items())],
    }
    for image_id, name in enumerate(names, start=1):
        image = cv2.imread(str(folder / name))
        h, w = image.shape[:2]
        coco["images"].append({"id": image_id, "file_name": name, "width": w, "height": h})
        dets = model.predict(engine, image)
        for i in range(len(dets)):
            x0, y0 = (int(v) for v in dets.mask.offsets[i])
            polygon = crop_polygon(dets.mask.crop(i), x0, y0, 1.0)
            if len(polygon) < 3:
                continue
            x1, y1, x2, y2 = (round(float(v), 2) for v in dets.xyxy[i])
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": COCO_IDS[int(dets.class_id[i])],
                    "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                    "area": float(dets.mask.area[i]),
                    "segmentation": [[float(v) for point in polygon for v in point]],
                    "iscrowd": 0,
                }
            )
        if args.review:
            args.review.mkdir(parents=True, exist_ok=True)
            labels = [f"{model.names[int(c)]} {s:.2f}" for c, s in zip(dets.class_id, dets.confidence, strict=True)]
            drawn = sv.MaskAnnotator().annotate(image.copy(), dets)
            drawn = sv.BoxAnnotator().annotate(drawn, dets)
            drawn = sv.LabelAnnotator(text_scale=0.4).annotate(drawn, dets, labels=labels)
            cv2.imwrite(str(args.review / Path(name).with_suffix(".jpg").name), np.ascontiguousarray(drawn))
    ANNOTATIONS.parent.mkdir(parents=True, exist_ok=True)
    ANNOTATIONS.write_text(json.dumps(coco, indent=None, separators=(",", ":")) + "\n")
    print(f"{ANNOTATIONS}: {len(coco['images'])} images, {len(coco['annotations'])} objects")


if __name__ == "__main__":
    main()
