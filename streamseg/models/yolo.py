"""YOLOv8 / YOLO11 detect, segment, pose and seg+pose (multitask) decoding (Ultralytics' non_max_suppression,
process_mask and pose postprocessing).

The head's output0 is [1, 4 + classes + mask coefficients + keypoints, anchors]: the box (cx, cy, w, h), one score
per class, then 32 mask coefficients (segment and multitask heads, with the prototypes [1, 32, h, w] as output1),
then the keypoints (pose and multitask heads: kpt_shape[0] times x, y and, when kpt_shape[1] is 3, a visibility
score already through the sigmoid; x and y in input pixels), as Ultralytics concatenates them.

Masks are computed per box: only the prototype pixels under the box are multiplied out and resampled
to the box's size in image pixels, then stored as crop RLEs in a supervision CompactMask. No
full-frame mask is ever allocated. Keypoints go into ``Detections.data["keypoints"]``: float32
(n, keypoints, 2 or 3), x and y in image pixels, then the visibility score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import supervision as sv
from supervision.detection.compact_mask import CompactMask

from streamseg.config.model import ModelConfig
from streamseg.detections import KEYPOINTS
from streamseg.engines.base import Engine, ModelInfo
from streamseg.errors import ModelError
from streamseg.models.letterbox import Letterbox, LetterboxParams, scale_boxes_to_image, scale_points_to_image
from streamseg.vocab import Task

TASKS = tuple(Task)
MASK_TASKS = (Task.SEGMENT, Task.MULTITASK)  # heads with mask prototypes (output1)
MAX_WH = 7680  # Ultralytics' per-class box offset for class-aware NMS
MAX_NMS = 30000  # at most this many candidates enter NMS (highest scores first)


class YoloModel:
    """The decoder of an Ultralytics YOLO detect/segment/pose/multitask export: image -> input tensor, raw
    outputs -> detections.

    It never runs the network itself (an engine or an inference stage does), so one model's decoding can
    overlap another frame's inference. preprocess reuses one letterbox canvas: one YoloModel per thread.
    """

    def __init__(
        self,
        info: ModelInfo,
        *,
        conf: float = 0.25,
        iou: float = 0.7,
        max_det: int = 300,
        agnostic_nms: bool = False,
        classes: list[int] | None = None,
    ) -> None:
        self.info = info
        self.names: dict[int, str] = dict(info.names)
        self.task = info.task
        self.conf, self.iou, self.max_det = float(conf), float(iou), int(max_det)
        self.agnostic_nms = agnostic_nms
        self.classes = None if classes is None else np.asarray(classes, dtype=np.int64)
        self.imgsz = info.imgsz
        self.kpt_shape = info.kpt_shape if self.task in (Task.POSE, Task.MULTITASK) else None
        self._nk = self.kpt_shape[0] * self.kpt_shape[1] if self.kpt_shape else 0
        self._check_static_shapes()
        self._letterbox = Letterbox(self.imgsz)

    @classmethod
    def from_config(cls, info: ModelInfo, cfg: ModelConfig) -> YoloModel:
        """The decoder with a camera's thresholds; `classes` (labels or ids) must be classes of the model."""
        return cls(
            info,
            conf=cfg.conf,
            iou=cfg.iou,
            max_det=cfg.max_det,
            agnostic_nms=cfg.agnostic_nms,
            classes=class_ids(cfg.classes, info),
        )

    # --- the three steps -------------------------------------------------------------------------

    def preprocess(self, image_bgr: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, LetterboxParams]:
        """The network input for `image_bgr` (written into `out` when given) and how to map results back."""
        return self._letterbox(image_bgr, out)

    def postprocess(
        self, outputs: Sequence[np.ndarray], params: LetterboxParams, image_shape_hw: tuple[int, int]
    ) -> sv.Detections:
        pred, protos = self._split_outputs(outputs)
        nm = 0 if protos is None else protos.shape[0]
        boxes, scores, class_ids, extra = self._nms(pred, nm)
        image_shape_hw = (int(image_shape_hw[0]), int(image_shape_hw[1]))
        if params.image_shape != image_shape_hw:
            raise ValueError(f"letterbox params are for {params.image_shape}, image is {image_shape_hw}")
        xyxy = scale_boxes_to_image(boxes, params)
        keypoints = None
        if self.kpt_shape is not None:
            keypoints = extra[:, nm : nm + self._nk].reshape(len(extra), *self.kpt_shape)
            scale_points_to_image(keypoints[..., :2], params)
        mask = None
        if protos is not None:
            mask, keep = _masks_from_protos(protos, extra[:, :nm], xyxy, params)
            xyxy, scores, class_ids = xyxy[keep], scores[keep], class_ids[keep]
            keypoints = None if keypoints is None else keypoints[keep]
        return self._detections(xyxy, scores, class_ids, mask, keypoints)

    def predict(self, engine: Engine, image_bgr: np.ndarray) -> sv.Detections:
        """The three steps on one image, with `engine` running the network (predict CLI, tests)."""
        tensor, params = self.preprocess(image_bgr)
        outputs = engine.infer(tensor)
        return self.postprocess(outputs, params, image_bgr.shape[:2])

    # --- output checks ---------------------------------------------------------------------------

    def _bad_outputs(self, shapes: Sequence[Sequence[object]], why: str) -> ModelError:
        got = ", ".join(f"{name}{list(s)}" for name, s in zip(self._output_names(len(shapes)), shapes, strict=True))
        return ModelError(
            f"cannot decode model {self.info.path}: {why} (task {self.task!r}, outputs {got}); "
            "streamseg decodes Ultralytics YOLO detect/segment/pose (and seg+pose multitask) exports without NMS "
            "(end2end/nms=False)"
        )

    def _output_names(self, n: int) -> list[str]:
        names = list(self.info.output_names)
        return names[:n] + [f"output{i}" for i in range(len(names), n)]

    def _check_static_shapes(self) -> None:
        """Reject what cannot be decoded when the model is opened, not on the first frame."""
        info = self.info
        if self.task not in TASKS:
            raise self._bad_outputs(info.output_shapes, f"task {self.task!r} is not supported")
        if info.output_shapes:
            self._check_shapes(info.output_shapes)

    def _check_shapes(self, shapes: Sequence[Sequence[int | str | None]]) -> None:
        want = 2 if self.task in MASK_TASKS else 1
        if len(shapes) != want:
            raise self._bad_outputs(shapes, f"expected {want} output(s), got {len(shapes)}")
        pred = shapes[0]
        if len(pred) != 3 or pred[0] not in (1, None):
            layout = {Task.DETECT: "", Task.SEGMENT: "+32", Task.POSE: "+keypoints", Task.MULTITASK: "+32+keypoints"}
            raise self._bad_outputs(shapes, f"output0 must be [1, 4+classes{layout[self.task]}, anchors]")
        nm = 0
        if want == 2:
            proto = shapes[1]
            if len(proto) != 4 or proto[0] not in (1, None) or not isinstance(proto[1], int):
                raise self._bad_outputs(shapes, "output1 must be mask prototypes [1, 32, h, w]")
            nm = proto[1]
        channels = pred[1]
        if isinstance(channels, int) and channels - 4 - nm - self._nk < 1:
            kpts = f" and {self._nk} keypoint values (kpt_shape {list(self.kpt_shape)})" if self.kpt_shape else ""
            raise self._bad_outputs(shapes, f"output0 has no room for class scores{kpts}")
        if isinstance(channels, int) and isinstance(pred[2], int) and pred[2] < channels:
            # end2end exports put detections on axis 1 ([1, 300, 6+32]); raw heads have anchors >> channels.
            raise self._bad_outputs(shapes, "output0 looks like an end2end (NMS-included) export")

    def _split_outputs(self, outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        self._check_shapes([o.shape for o in outputs])
        pred = outputs[0][0]  # (4 + nc + nm, anchors)
        protos = outputs[1][0] if self.task in MASK_TASKS else None
        return pred, protos

    # --- decoding --------------------------------------------------------------------------------

    def _nms(self, pred: np.ndarray, nm: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Ultralytics non_max_suppression (single label per box) on one image's raw head output."""
        nc = pred.shape[0] - 4 - nm - self._nk
        cls_scores = pred[4 : 4 + nc]
        scores = cls_scores.max(0)  # cheap pass over all anchors; argmax only for the candidates below
        idx = np.flatnonzero(scores > self.conf)
        class_ids = cls_scores[:, idx].argmax(0)
        if self.classes is not None:
            in_classes = np.isin(class_ids, self.classes)
            idx, class_ids = idx[in_classes], class_ids[in_classes]
        if len(idx) > MAX_NMS:
            top = np.argsort(-scores[idx], kind="stable")[:MAX_NMS]
            idx, class_ids = idx[top], class_ids[top]
        cand = pred[:, idx].T.astype(np.float32)  # (n, 4 + nc + nm + nk): only the candidates are transposed
        scores = scores[idx].astype(np.float32)
        boxes = _xywh_to_xyxy(cand[:, :4])
        offset = 0.0 if self.agnostic_nms else class_ids[:, None].astype(np.float64) * MAX_WH
        order = nms(boxes.astype(np.float64) + offset, scores, self.iou)[: self.max_det]
        return boxes[order], scores[order], class_ids[order], cand[order, 4 + nc :]

    def _detections(
        self,
        xyxy: np.ndarray,
        scores: np.ndarray,
        class_ids: np.ndarray,
        mask: CompactMask | None,
        keypoints: np.ndarray | None,
    ) -> sv.Detections:
        labels = np.array([self.names.get(int(c), str(int(c))) for c in class_ids], dtype=str)
        data: dict[str, np.ndarray] = {"class_name": labels}
        if self.kpt_shape is not None:
            shape = (len(xyxy), *self.kpt_shape)
            data[KEYPOINTS] = np.ascontiguousarray(keypoints, dtype=np.float32).reshape(shape)
        if len(xyxy) == 0:
            empty = sv.Detections.empty()
            empty.data.update(data)
            if self.task in MASK_TASKS:
                empty.mask = mask if mask is not None else _empty_compact_mask((0, 0))
            return empty
        return sv.Detections(
            xyxy=xyxy.astype(np.float32),
            confidence=scores.astype(np.float32),
            class_id=class_ids.astype(int),
            mask=mask,
            data=data,
        )


def class_ids(classes: list[str | int] | None, info: ModelInfo) -> list[int] | None:
    """Map the config's labels or ids to class ids, refusing ones the model does not have."""
    if classes is None:
        return None
    by_label = {label: cid for cid, label in info.names.items()}
    ids = []
    for c in classes:
        cid = by_label.get(c) if isinstance(c, str) else c
        if cid is None or cid not in info.names:
            raise ModelError(f"model.classes: {c!r} is not a class of {info.path.name}")
        ids.append(cid)
    return ids


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    xyxy = np.empty_like(xywh)
    half = xywh[:, 2:4] / 2
    xyxy[:, :2] = xywh[:, :2] - half
    xyxy[:, 2:] = xywh[:, :2] + half
    return xyxy


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first; a box is dropped when IoU > iou_threshold.

    Same semantics as torchvision.ops.nms. OpenCV's C++ NMSBoxes is used for speed (it takes x, y, w, h).
    """
    if len(boxes) == 0:
        return np.empty(0, dtype=np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    # score_threshold 0: callers pass scores already above conf (> 0); OpenCV keeps scores > threshold.
    keep = cv2.dnn.NMSBoxes(xywh, scores.astype(np.float32), 0.0, float(iou_threshold))
    return np.asarray(keep, dtype=np.int64).reshape(-1)


def _empty_compact_mask(image_shape: tuple[int, int]) -> CompactMask:
    return CompactMask([], np.empty((0, 2), np.int32), np.empty((0, 2), np.int32), image_shape)


def _box_pixels(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Pixel index range [start, stop) whose centres lie in [lo, hi), at least one pixel, inside the image."""
    start = min(max(math.ceil(lo - 0.5), 0), size - 1)
    stop = min(max(math.ceil(hi - 0.5), start + 1), size)
    return start, stop


def _masks_from_protos(
    protos: np.ndarray, coeffs: np.ndarray, xyxy: np.ndarray, params: LetterboxParams
) -> tuple[CompactMask, np.ndarray]:
    """One crop mask per box, in image pixels. Returns the CompactMask and which boxes kept a mask.

    For each image pixel under the box, the mask logit is sampled bilinearly from the prototype
    grid at the same point (image -> letterbox input -> prototype coordinates, pixel centres), which
    is Ultralytics' process_mask (bilinear upsample to input size, threshold at 0, crop to box)
    followed by its mapping back to the image, in one resampling. Boxes whose mask comes out empty
    are dropped, as Ultralytics' predictor does.
    """
    nm, mh, mw = protos.shape
    img_h, img_w = params.image_shape
    in_h, in_w = params.input_shape
    sx, sy = params.scale
    pad_x, pad_y = params.pad
    # image pixel centre u -> prototype coordinate (pixel-centre convention): a * u + b
    ax, bx = sx * mw / in_w, (0.5 * sx + pad_x) * mw / in_w - 0.5
    ay, by = sy * mh / in_h, (0.5 * sy + pad_y) * mh / in_h - 0.5

    rles, shapes, offsets, keep = [], [], [], []
    for i, (x1, y1, x2, y2) in enumerate(xyxy.tolist()):
        c0, c1 = _box_pixels(x1, x2, img_w)
        r0, r1 = _box_pixels(y1, y2, img_h)
        # prototype window covering the box, with a 1-px margin for the bilinear neighbours
        px0 = max(math.floor(ax * c0 + bx) - 1, 0)
        px1 = min(math.ceil(ax * (c1 - 1) + bx) + 2, mw)
        py0 = max(math.floor(ay * r0 + by) - 1, 0)
        py1 = min(math.ceil(ay * (r1 - 1) + by) + 2, mh)
        if px1 <= px0 or py1 <= py0:
            continue
        window = protos[:, py0:py1, px0:px1].reshape(nm, -1)
        logits = (coeffs[i] @ window).reshape(py1 - py0, px1 - px0).astype(np.float32, copy=False)
        # dst (u, v) in the crop -> src in the window: inverse affine map for warpAffine
        m = np.array([[ax, 0.0, ax * c0 + bx - px0], [0.0, ay, ay * r0 + by - py0]], dtype=np.float64)
        crop_logits = cv2.warpAffine(
            logits,
            m,
            (c1 - c0, r1 - r0),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        crop = crop_logits > 0  # sigmoid(logit) > 0.5
        if not crop.any():
            continue
        rles.append(np.asarray(sv.mask_to_rle(crop), dtype=np.int32))
        shapes.append((r1 - r0, c1 - c0))
        offsets.append((c0, r0))
        keep.append(i)
    if not keep:
        return _empty_compact_mask((img_h, img_w)), np.zeros(len(xyxy), dtype=bool)
    mask = CompactMask(rles, np.array(shapes, dtype=np.int32), np.array(offsets, dtype=np.int32), (img_h, img_w))
    keep_mask = np.zeros(len(xyxy), dtype=bool)
    keep_mask[keep] = True
    return mask, keep_mask
