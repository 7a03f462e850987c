"""Batching on the real model with a dynamic batch axis: the same detections as one frame at a time."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from streamseg.engines import create_engine
from streamseg.inference.stage import InferenceStage
from streamseg.models.yolo import YoloModel


def test_batched_detections_equal_batch_1(dynamic_seg_model: Path, bikes_mp4: Path) -> None:
    with av.open(str(bikes_mp4)) as container:
        # every 20th frame: 12 different street scenes with cars, people and bicycles
        images = [f.to_ndarray(format="bgr24") for i, f in enumerate(container.decode(video=0)) if i % 20 == 0][:12]
    single = InferenceStage([create_engine(dynamic_seg_model, threads=2)]).start()
    batched = InferenceStage([create_engine(dynamic_seg_model, threads=2)], batch_size=4, batch_timeout=2.0).start()
    model = YoloModel(single.info)
    assert single.info.batch == -1 and batched.batch_size == 4
    try:
        inputs = [model.preprocess(image) for image in images]
        one = [single.submit(tensor).result(30) for tensor, _ in inputs]
        many = [f.result(30) for f in [batched.submit(tensor) for tensor, _ in inputs]]
    finally:
        single.close()
        batched.close()
    assert [m.batch for m in many] == [4] * 12, "three full batches of four"
    found = 0
    for (_, params), image, a, b in zip(inputs, images, one, many, strict=True):
        for x, y in zip(a.outputs, b.outputs, strict=True):
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-4)
        da = model.postprocess(a.outputs, params, image.shape[:2])
        db = model.postprocess(b.outputs, params, image.shape[:2])
        assert da.class_id.tolist() == db.class_id.tolist()
        np.testing.assert_allclose(da.xyxy, db.xyxy, atol=1e-3)
        assert da.mask.area.tolist() == db.mask.area.tolist()
        found += len(da)
    assert found > 12, "the frames have objects to compare"
