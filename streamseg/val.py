"""`streamseg val`: box and mask mAP50-95 / mAP50 of a model on a labelled dataset, computed by pycocotools.

The model runs through the same path as `streamseg predict` (engine from the file, letterbox, YOLO decode, masks as
COCO RLE from serialize.py), so the figures are those of what the daemon deploys. COCOeval does the rest with COCO's
own definitions (10 IoU thresholds 0.50:0.95, 101-point interpolated precision, at most 100 detections an image).
Val keeps every detection above conf 0.001 (Ultralytics' val default): mAP integrates over all score thresholds,
and a predict threshold (0.25) would cut the low-precision end of every curve.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import supervision as sv

from streamseg.dataset import Dataset, DatasetError, load_dataset
from streamseg.engines import Engine, create_engine
from streamseg.errors import StreamsegError
from streamseg.models.registry import resolve_model
from streamseg.models.yolo import MASK_TASKS, YoloModel
from streamseg.sinks.serialize import detection_dicts
from streamseg.timing import StageTimes

VAL_CONF = 0.001  # Ultralytics' val default
VAL_IOU = 0.7
IOU_TYPES = {"box": "bbox", "mask": "segm"}


@dataclass(frozen=True)
class Scores:
    map: float  # mAP50-95
    map50: float


@dataclass(frozen=True)
class ClassRow:
    class_id: int  # the dataset's category id
    name: str
    images: int  # images with at least one instance
    instances: int
    box: Scores
    mask: Scores | None


@dataclass
class ValReport:
    model: str
    images: int
    instances: int
    box: Scores
    mask: Scores | None
    classes: list[ClassRow] = field(default_factory=list)
    speed_ms: dict[str, float] = field(default_factory=dict)  # per image: preprocess, inference, postprocess

    def summary(self) -> dict[str, Any]:
        """The `--json` object: box/mask mAPs and the image count (plus speed and instances)."""
        mask = self.mask or Scores(0.0, 0.0)
        return {
            "box": {"map": self.box.map, "map50": self.box.map50},
            "mask": {"map": mask.map, "map50": mask.map50},
            "images": self.images,
            "instances": self.instances,
            "speed_ms": {k: round(v, 3) for k, v in self.speed_ms.items()},
        }

    def table(self) -> str:
        has_mask = self.mask is not None
        head = f"{'class':<20}{'images':>8}{'instances':>11}{'box mAP50':>11}{'mAP50-95':>10}"
        head += f"{'mask mAP50':>12}{'mAP50-95':>10}" if has_mask else ""
        rows = [head]

        def row(name: str, images: int, instances: int, box: Scores, mask: Scores | None) -> str:
            line = f"{name[:19]:<20}{images:>8}{instances:>11}{box.map50:>11.3f}{box.map:>10.3f}"
            return line + (f"{mask.map50:>12.3f}{mask.map:>10.3f}" if mask is not None else "")

        rows.append(row("all", self.images, self.instances, self.box, self.mask))
        rows += [row(c.name, c.images, c.instances, c.box, c.mask) for c in self.classes]
        speed = ", ".join(f"{v:.1f} ms {k}" for k, v in self.speed_ms.items())
        rows.append(f"speed per image: {speed}")
        return "\n".join(rows)


# --- the CLI --------------------------------------------------------------------------------------------------


def val(args: argparse.Namespace) -> int:
    from streamseg.predict import check_imgsz

    dataset = load_dataset(args.data)
    engine = create_engine(resolve_model(args.model), threads=args.threads)
    with engine:
        check_imgsz(engine, args.imgsz)
        model = YoloModel(engine.info, conf=args.conf, iou=args.iou, max_det=args.max_det)
        report = validate(engine, model, dataset)
    if args.json:
        print(json.dumps(report.summary()))
    else:
        print(f"{report.model} on {args.data} (conf {args.conf}, iou {args.iou}):")
        print(report.table())
    return 0


# --- running the model over a dataset -------------------------------------------------------------------------


def validate(engine: Engine, model: YoloModel, dataset: Dataset) -> ValReport:
    """Run `model` on every image of `dataset` and score its detections with COCOeval."""
    import cv2

    category_of = category_map(model.names, dataset)
    times = StageTimes()
    results: list[dict[str, Any]] = []
    for record in dataset.images:
        image = cv2.imread(str(record.path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"cannot read image {record.path}")
        if (image.shape[1], image.shape[0]) != (record.width, record.height):
            raise DatasetError(
                f"image {record.path} is {image.shape[1]}x{image.shape[0]}, "
                f"its annotations say {record.width}x{record.height}"
            )
        with times("preprocess"):
            tensor, params = model.preprocess(image)
        with times("inference"):
            outputs = engine.infer(tensor)
        with times("postprocess"):
            dets = model.postprocess(outputs, params, image.shape[:2])
        results += coco_results(dets, record.id, category_of)
    report = evaluate(dataset.coco, results, segm=model.task in MASK_TASKS)
    report.model = engine.info.path.name
    report.speed_ms = {k: times.ms(k) for k in ("preprocess", "inference", "postprocess")}
    return report


def category_map(names: dict[int, str], dataset: Dataset) -> dict[int, int]:
    """Model class id -> the dataset's category id, matched by name (COCO files number classes 1..90)."""
    by_name = {name: cid for cid, name in dataset.categories.items()}
    mapping = {cid: by_name[name] for cid, name in names.items() if name in by_name}
    if not mapping:
        some = ", ".join(sorted(by_name)[:5])
        raise StreamsegError(f"{dataset.root}: none of the dataset's categories ({some}, ...) is a class of the model")
    return mapping


def coco_results(dets: sv.Detections, image_id: int, category_of: dict[int, int]) -> list[dict[str, Any]]:
    """COCO result entries (bbox xywh, score, and the mask as an RLE when there are masks) for one image."""
    has_mask = dets.mask is not None and len(dets) > 0
    dicts = detection_dicts(dets, "rle" if has_mask else "none")
    out = []
    for d, score in zip(dicts, np.asarray(dets.confidence, dtype=np.float64).tolist(), strict=True):
        category = category_of.get(d["class_id"])
        if category is None:
            continue
        x1, y1, x2, y2 = d["box"]
        entry = {"image_id": image_id, "category_id": category, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}
        if has_mask:
            entry["segmentation"] = {"size": d["mask"]["size"], "counts": d["mask"]["counts"]}
        out.append(entry)
    return out


# --- COCOeval -------------------------------------------------------------------------------------------------


def evaluate(gt: dict[str, Any], results: Sequence[dict[str, Any]], *, segm: bool = True) -> ValReport:
    """Box (and mask) mAP of `results` against the ground truth `gt` (COCO dicts), with a per-class breakdown."""
    coco_gt = _coco(gt)
    box, box_classes = _cocoeval(
        coco_gt, [{k: v for k, v in r.items() if k != "segmentation"} for r in results], "bbox"
    )
    mask, mask_classes = (None, {})
    if segm:
        mask, mask_classes = _cocoeval(coco_gt, [r for r in results if "segmentation" in r], "segm")
    anns = gt.get("annotations", [])
    rows = []
    for cat in sorted(gt["categories"], key=lambda c: c["id"]):
        cid = int(cat["id"])
        mine = [a for a in anns if a["category_id"] == cid and not a.get("iscrowd", 0)]
        if not mine:
            continue
        rows.append(
            ClassRow(
                cid,
                str(cat["name"]),
                len({a["image_id"] for a in mine}),
                len(mine),
                box_classes.get(cid, Scores(0.0, 0.0)),
                mask_classes.get(cid, Scores(0.0, 0.0)) if segm else None,
            )
        )
    return ValReport(
        model="",
        images=len(gt["images"]),
        instances=sum(1 for a in anns if not a.get("iscrowd", 0)),
        box=box,
        mask=mask,
        classes=rows,
    )


def _coco(gt: dict[str, Any]) -> Any:
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = {"info": {}, "licenses": [], **gt}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco.createIndex()
    return coco


def _cocoeval(coco_gt: Any, results: list[dict[str, Any]], iou_type: str) -> tuple[Scores, dict[int, Scores]]:
    """(mAP50-95, mAP50) over all classes, and per category id."""
    from pycocotools.cocoeval import COCOeval

    if not results or not coco_gt.getAnnIds():
        return Scores(0.0, 0.0), {}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(list(results))
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    overall = Scores(max(float(ev.stats[0]), 0.0), max(float(ev.stats[1]), 0.0))
    # precision: [iou thresholds, recall points, categories, area ranges (all first), max dets (100 last)]
    precision = ev.eval["precision"][:, :, :, 0, -1]
    per_class = {}
    for k, cid in enumerate(ev.params.catIds):
        p = precision[:, :, k]
        p50 = p[0]
        per_class[int(cid)] = Scores(_mean_valid(p), _mean_valid(p50))
    return overall, per_class


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else 0.0


# --- agreement between two engines of one model ------------------------------------------------------------------


def agreement(
    reference: Engine,
    candidate: Engine,
    images: Iterable[np.ndarray],
    *,
    conf: float = 0.25,
) -> ValReport:
    """`val` of `candidate` with `reference`'s own detections (at the predict threshold `conf`) as ground truth:
    1.0 when the candidate finds the same objects with the same boxes and masks. Used after `export --int8`."""
    ref_model = YoloModel(reference.info, conf=conf)
    cand_model = YoloModel(candidate.info, conf=VAL_CONF)
    segm = ref_model.task in MASK_TASKS
    names = dict(ref_model.names)
    ids = {cid: cid + 1 for cid in names}  # COCO category ids start at 1
    gt: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": ids[c], "name": n} for c, n in names.items()],
    }
    results: list[dict[str, Any]] = []
    for image_id, image in enumerate(images, start=1):
        h, w = image.shape[:2]
        gt["images"].append({"id": image_id, "width": w, "height": h, "file_name": f"frame{image_id}"})
        for r in coco_results(ref_model.predict(reference, image), image_id, ids):
            ann = {"id": len(gt["annotations"]) + 1, "iscrowd": 0, **r}
            ann.pop("score")
            ann["area"] = _area(ann)
            if not segm:
                ann.pop("segmentation", None)
            gt["annotations"].append(ann)
        results += coco_results(cand_model.predict(candidate, image), image_id, ids)
    report = evaluate(gt, results, segm=segm)
    report.model = candidate.info.path.name
    return report


def _area(ann: dict[str, Any]) -> float:
    if "segmentation" in ann:
        from pycocotools import mask as mask_utils

        return float(mask_utils.area(ann["segmentation"]))
    return float(ann["bbox"][2] * ann["bbox"][3])
