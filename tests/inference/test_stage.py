"""InferenceStage: workers, batching across callers, frame order, failures, the batch timeout."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from streamseg.inference.stage import InferenceStage
from tests.fakes import FakeEngine, box_x


def frame(value: float) -> np.ndarray:
    return np.full((1, 3, 320, 320), value, np.float32)


def x_of(inference) -> float:
    return float(inference.outputs[0][0, 0, 0])


def test_results_come_back_for_each_frame_in_submission_order() -> None:
    engines = [FakeEngine(delay=0.002), FakeEngine(delay=0.005)]
    stage = InferenceStage(engines).start()
    try:
        values = [i / 100 for i in range(40)]
        futures = [stage.submit(frame(v)) for v in values]
        got = [x_of(f.result(5)) for f in futures]
    finally:
        stage.close()
    assert got == pytest.approx([box_x(v) for v in values])
    assert all(len(e.calls) > 0 for e in engines), "both workers took frames"
    assert all(e.closed for e in engines)


def test_batches_frames_from_several_cameras_and_splits_them_back() -> None:
    engine = FakeEngine(batch=-1, delay=0.02)
    stage = InferenceStage([engine], batch_size=4, batch_timeout=0.5).start()
    results: dict[str, list[float]] = {}

    def camera(name: str, base: float) -> None:
        futures = [stage.submit(frame(base + i / 1000)) for i in range(8)]
        results[name] = [x_of(f.result(5)) for f in futures]

    threads = [threading.Thread(target=camera, args=(n, b)) for n, b in (("a", 0.1), ("b", 0.5))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        stage.close()
    for name, base in (("a", 0.1), ("b", 0.5)):
        assert results[name] == pytest.approx([box_x(base + i / 1000) for i in range(8)], abs=1e-3)
    assert max(engine.calls) > 1, f"frames were batched: {engine.calls}"
    assert sum(engine.calls) == 16
    assert stage.stats.frames == 16 and stage.stats.calls == len(engine.calls)


def test_batch_results_equal_single_frame_results() -> None:
    values = [0.05, 0.3, 0.7]
    single = InferenceStage([FakeEngine()]).start()
    batched = InferenceStage([FakeEngine(batch=-1)], batch_size=3, batch_timeout=1.0).start()
    try:
        one = [single.submit(frame(v)).result(5) for v in values]
        many = [f.result(5) for f in [batched.submit(frame(v)) for v in values]]
    finally:
        single.close()
        batched.close()
    assert [m.batch for m in many] == [3, 3, 3]
    for a, b in zip(one, many, strict=True):
        for x, y in zip(a.outputs, b.outputs, strict=True):
            assert x.shape == y.shape
            np.testing.assert_array_equal(x, y)


def test_a_lone_frame_does_not_wait_past_the_batch_timeout() -> None:
    stage = InferenceStage([FakeEngine(batch=-1)], batch_size=8, batch_timeout=0.05).start()
    try:
        t0 = time.monotonic()
        result = stage.submit(frame(0.2)).result(5)
        waited = time.monotonic() - t0
    finally:
        stage.close()
    assert result.batch == 1
    assert waited < 1.0, f"one frame waited {waited:.2f} s for a batch that never filled (timeout 0.05 s)"


def test_a_frame_that_breaks_the_engine_fails_only_its_own_future() -> None:
    poison = 0.666
    engine = FakeEngine(batch=-1, fail=lambda images: bool(np.isclose(images.mean(axis=(1, 2, 3)), poison).any()))
    stage = InferenceStage([engine], batch_size=4, batch_timeout=0.2).start()
    try:
        futures = [stage.submit(frame(v)) for v in (0.1, poison, 0.2, 0.3)]
        errors = [f.exception(5) for f in futures]
    finally:
        stage.close()
    assert [e is not None for e in errors] == [False, True, False, False]
    assert "fake engine failure" in str(errors[1])


def test_static_batch_model_ignores_batch_size(caplog: pytest.LogCaptureFixture) -> None:
    engine = FakeEngine(batch=1)
    stage = InferenceStage([engine], batch_size=4).start()
    try:
        for f in [stage.submit(frame(0.1)) for _ in range(6)]:
            f.result(5)
    finally:
        stage.close()
    assert stage.batch_size == 1 and engine.calls == [1] * 6
    assert "fixed batch of 1: batch_size 4 ignored" in caplog.text


def test_submit_after_close_fails_the_future() -> None:
    stage = InferenceStage([FakeEngine()]).start()
    stage.close()
    with pytest.raises(RuntimeError, match="closed"):
        stage.submit(frame(0.1)).result(1)


def test_a_frame_alone_runs_on_the_solo_engine_and_queued_frames_on_the_workers() -> None:
    workers = [FakeEngine(delay=0.02), FakeEngine(delay=0.02)]
    solo = FakeEngine(delay=0.02)
    stage = InferenceStage(workers, solo=solo).start()
    try:
        stage.submit(frame(0.1)).result(5)  # nothing else running or queued: every core for it
        assert solo.calls == [1] and not any(w.calls for w in workers)
        burst = [stage.submit(frame(i / 100)) for i in range(10)]  # frames queue up: the workers share the cores
        got = [x_of(f.result(5)) for f in burst]
    finally:
        stage.close()
    assert got == pytest.approx([box_x(i / 100) for i in range(10)])
    assert all(len(w.calls) >= 3 for w in workers), [w.calls for w in workers]
    assert len(solo.calls) <= 2, "a queue of frames is not run one at a time on the solo engine"
    assert solo.closed
