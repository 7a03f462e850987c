"""Labelled datasets for `streamseg val`: COCO format or YOLO-seg, both read into one COCO ground-truth dict.

COCO format: `DIR/annotations.json` (COCO's instances file; bbox and polygon or RLE segmentation), images found
by their `file_name` under DIR, DIR/images or beside the annotations file. YOLO-seg: `DIR/data.yaml` (`names`, and
optionally `path` / `val` naming the image folder), images under `images/` (or `images/val`), one label file per
image under `labels/` with a line `class x1 y1 x2 y2 ...` per object (polygon, coordinates normalised to 0..1).
Both end up as a COCO dict that pycocotools reads, so one evaluation serves both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamseg.errors import StreamsegError

COCO_FILE = "annotations.json"
YOLO_FILE = "data.yaml"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class DatasetError(StreamsegError):
    """A dataset folder or one of its files cannot be read; the message names the file."""


@dataclass(frozen=True)
class ImageRecord:
    id: int
    path: Path
    width: int
    height: int


@dataclass(frozen=True)
class Dataset:
    """Images and their ground truth as a COCO dict (`images`, `annotations`, `categories`)."""

    root: Path
    images: list[ImageRecord]
    coco: dict[str, Any]

    @property
    def categories(self) -> dict[int, str]:
        return {int(c["id"]): str(c["name"]) for c in self.coco["categories"]}


def load_dataset(root: Path) -> Dataset:
    """The dataset in `root`: COCO format when it has annotations.json, else YOLO-seg when it has data.yaml."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    if (root / COCO_FILE).is_file():
        return load_coco(root / COCO_FILE)
    if (root / YOLO_FILE).is_file():
        return load_yolo(root / YOLO_FILE)
    raise DatasetError(f"{root}: no {COCO_FILE} (COCO format) or {YOLO_FILE} (YOLO-seg) in this folder")


# --- COCO format ----------------------------------------------------------------------------------------------


def load_coco(path: Path) -> Dataset:
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    if not isinstance(coco, dict) or not all(isinstance(coco.get(k), list) for k in ("images", "categories")):
        raise DatasetError(f"{path}: not a COCO instances file (needs 'images' and 'categories' lists)")
    coco.setdefault("annotations", [])
    folders = [path.parent, path.parent / "images"]
    images = []
    for i, image in enumerate(coco["images"]):
        try:
            name, image_id = str(image["file_name"]), int(image["id"])
            width, height = int(image["width"]), int(image["height"])
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{path}: images[{i}] needs id, file_name, width and height") from None
        found = next((f / name for f in folders if (f / name).is_file()), None)
        if found is None:
            raise DatasetError(f"{path}: image {name!r} not found in {' or '.join(str(f) for f in folders)}")
        images.append(ImageRecord(image_id, found, width, height))
    for i, ann in enumerate(coco["annotations"]):
        if not all(k in ann for k in ("image_id", "category_id", "bbox")):
            raise DatasetError(f"{path}: annotations[{i}] needs image_id, category_id and bbox")
        ann.setdefault("id", i + 1)
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
    return Dataset(path.parent, images, coco)


# --- YOLO-seg ---------------------------------------------------------------------------------------------------


def load_yolo(path: Path) -> Dataset:
    import cv2
    import yaml

    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetError(f"cannot read {path}: {' '.join(str(exc).split())}") from None
    names = _yolo_names(spec.get("names") if isinstance(spec, dict) else None, path)
    base = path.parent / str(spec.get("path") or ".")
    image_dir = _yolo_image_dir(base, spec.get("val"), path)
    label_dir = _labels_for(image_dir)
    files = sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in {image_dir}")
    images, annotations = [], []
    for image_id, file in enumerate(files, start=1):
        image = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DatasetError(f"cannot read image {file}")
        height, width = image.shape[:2]
        images.append(ImageRecord(image_id, file, width, height))
        label = label_dir / file.relative_to(image_dir).with_suffix(".txt")
        if label.is_file():
            for line_no, polygon, cls in _yolo_polygons(label, width, height, names):
                xs, ys = polygon[0::2], polygon[1::2]
                x0, y0 = min(xs), min(ys)
                ann = {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cls,
                    "bbox": [x0, y0, max(xs) - x0, max(ys) - y0],
                    "segmentation": [polygon] if len(xs) >= 3 else [],
                    "iscrowd": 0,
                    "_line": f"{label}:{line_no}",
                }
                annotations.append(ann)
    coco = {
        "images": [{"id": r.id, "file_name": str(r.path), "width": r.width, "height": r.height} for r in images],
        "annotations": annotations,
        "categories": [{"id": cid, "name": name} for cid, name in names.items()],
    }
    _fill_areas(coco)
    return Dataset(path.parent, images, coco)


def _yolo_names(value: Any, path: Path) -> dict[int, str]:
    if isinstance(value, list):
        return {i: str(n) for i, n in enumerate(value)}
    if isinstance(value, dict):
        try:
            return {int(k): str(v) for k, v in value.items()}
        except (TypeError, ValueError):
            pass
    raise DatasetError(f"{path}: names: a list of class names or a mapping id -> name is needed")


def _yolo_image_dir(base: Path, val: Any, path: Path) -> Path:
    candidates = [base / str(val)] if val else [base / "images" / "val", base / "images"]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise DatasetError(f"{path}: image folder not found: {' or '.join(str(c) for c in candidates)}")


def _labels_for(image_dir: Path) -> Path:
    """YOLO's rule: the last `images` part of the path replaced by `labels`."""
    parts = list(image_dir.parts)
    if "images" not in parts:
        return image_dir.parent / "labels"
    i = len(parts) - 1 - parts[::-1].index("images")
    parts[i] = "labels"
    return Path(*parts)


def _yolo_polygons(label: Path, width: int, height: int, names: dict[int, str]):
    for line_no, line in enumerate(label.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls, values = int(fields[0]), [float(v) for v in fields[1:]]
        except ValueError:
            raise DatasetError(f"{label}:{line_no}: expected `class x1 y1 x2 y2 ...`, got {line.strip()!r}") from None
        if cls not in names:
            raise DatasetError(f"{label}:{line_no}: class {cls} is not in data.yaml names")
        if len(values) == 4:  # a detection label (cx cy w h): its box as a polygon
            cx, cy, w, h = values
            values = [cx - w / 2, cy - h / 2, cx + w / 2, cy - h / 2, cx + w / 2, cy + h / 2, cx - w / 2, cy + h / 2]
        if len(values) < 6 or len(values) % 2:
            raise DatasetError(f"{label}:{line_no}: a polygon needs at least 3 x y pairs")
        polygon = [v * (width if i % 2 == 0 else height) for i, v in enumerate(values)]
        yield line_no, polygon, cls


def _fill_areas(coco: dict[str, Any]) -> None:
    """COCO's `area` (used for its small/medium/large split): the mask's pixel area, as COCO's own files have."""
    from pycocotools import mask as mask_utils

    sizes = {im["id"]: (im["height"], im["width"]) for im in coco["images"]}
    for ann in coco["annotations"]:
        ann.pop("_line", None)
        h, w = sizes[ann["image_id"]]
        if ann["segmentation"]:
            rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], h, w))
            ann["area"] = float(mask_utils.area(rle))
        else:
            ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
