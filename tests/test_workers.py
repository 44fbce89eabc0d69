"""Several encoder batches at once (runtime.ParallelMap, runtime.encoder_workers): results in order, bounded
read-ahead, failures where they belong, and features and captions identical to one batch at a time."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from _helpers import tiny_recap, word_tokenizer

from videorecap import runtime
from videorecap.runtime import ParallelMap, encoder_workers


def _worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("test-worker")]


def test_results_come_in_order_computed_at_once():
    barrier = threading.Barrier(3, timeout=10)  # the first three items meet: only possible if they run at once
    threads = set()

    def fn(i: int) -> int:
        threads.add(threading.get_ident())
        if i < 3:
            barrier.wait()
        time.sleep(0.02 * ((7 * i) % 5))  # items finish out of order
        return i * i

    with ParallelMap(fn, range(20), workers=3, name="test-worker") as results:
        assert list(results) == [i * i for i in range(20)]
    assert len(threads) == 3 and threading.get_ident() not in threads
    assert not _worker_threads()  # stopped when the block is left


def test_one_worker_runs_in_the_callers_thread():
    seen = []
    with ParallelMap(lambda i: seen.append(threading.get_ident()) or i, range(4), workers=1, name="test-worker") as r:
        assert list(r) == [0, 1, 2, 3]
        assert not _worker_threads()
    assert set(seen) == {threading.get_ident()}


def test_items_are_drawn_at_most_ahead_of_the_result_taken():
    drawn = []

    def items():
        for i in range(50):
            drawn.append(i)
            yield i

    with ParallelMap(lambda i: i, items(), workers=2, ahead=3, name="test-worker") as results:
        for taken, value in enumerate(results, start=1):
            assert value == taken - 1
            assert len(drawn) <= taken + 2  # this result's item and at most `ahead - 1` after it
    assert len(drawn) == 50


def test_a_failure_is_raised_where_its_result_would_come_and_the_rest_is_cancelled():
    calls = []

    def fn(i: int) -> int:
        calls.append(i)
        if i == 5:
            raise ValueError("item 5 is bad")
        return i

    got = []
    with pytest.raises(ValueError, match="item 5 is bad"):
        with ParallelMap(fn, range(1000), workers=2, name="test-worker") as results:
            for value in results:
                got.append(value)
    assert got == [0, 1, 2, 3, 4]
    assert len(calls) < 20  # the items after the failure were not all computed
    assert not _worker_threads()


def test_leaving_early_cancels_the_items_not_started():
    calls = []
    with ParallelMap(lambda i: calls.append(i) or i, range(1000), workers=2, ahead=4, name="test-worker") as r:
        for value in r:
            if value == 1:
                break
    assert len(calls) <= 2 + 4 and not _worker_threads()


def test_encoder_workers_fill_the_cores_at_the_current_thread_count(monkeypatch):
    monkeypatch.delenv(runtime.ENCODER_WORKERS_ENV, raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert encoder_workers("cpu", cores=2) == 2  # the CLI's default on 2 cores: one torch thread
        assert encoder_workers("cpu", cores=1) == 1
        assert encoder_workers("cpu", cores=64) == runtime.MAX_ENCODER_WORKERS
        torch.set_num_threads(2)
        assert encoder_workers("cpu", cores=2) == 1  # --threads 2 on 2 cores: one batch on both cores, as before
        assert encoder_workers("cpu", cores=8) == 4
        torch.set_num_threads(1)
        assert encoder_workers("cuda:0", cores=8) == 1  # the GPU computes; the CPU threads would only wait
        compiled = type("Compiled", (), {"thread_safe": False})()
        assert encoder_workers("cpu", compiled, cores=8) == 1
        monkeypatch.setenv(runtime.ENCODER_WORKERS_ENV, "3")  # the user's setting wins on a CPU
        assert encoder_workers("cpu", cores=2) == 3 and encoder_workers("cuda", cores=2) == 1
        monkeypatch.setenv(runtime.ENCODER_WORKERS_ENV, "many")
        assert encoder_workers("cpu", cores=2) == 2
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _record_threads(monkeypatch, module, name):
    """Wrap `module.name` so that the threads it runs in are recorded."""
    seen: list[str] = []
    original = getattr(module, name)

    def wrapped(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return seen


def test_captions_and_features_are_identical_with_several_encoder_batches_at_once(
    tmp_path, monkeypatch, one_torch_thread
):
    from videorecap import pipeline
    from videorecap.pipeline import Captioner, CaptionOptions, caption_video
    from videorecap.video.testing import make_video

    tok = word_tokenizer(120)
    models = {level: (tiny_recap(level, segment_seconds=12.0), tok) for level in ("clip", "segment", "video")}
    captioner = Captioner(models, {lv: "tiny" for lv in models})
    video = make_video(tmp_path / "v.mp4", duration=40.0, fps=2.0, size=(32, 24))
    seen = _record_threads(monkeypatch, pipeline, "encode_clips")
    cls_rows: list[np.ndarray] = []  # the windows' CLS features as the clip stage receives them, batch by batch
    cls_features = pipeline.cls_features
    monkeypatch.setattr(pipeline, "cls_features", lambda tokens: cls_rows.append(cls_features(tokens)) or cls_rows[-1])
    runs = {}
    for workers in ("1", "3"):
        monkeypatch.setenv(runtime.ENCODER_WORKERS_ENV, workers)
        seen.clear()
        cls_rows.clear()
        res = caption_video(video, captioner, CaptionOptions(batch_size=2))
        runs[workers] = (res, list(seen), np.concatenate(cls_rows))
    one, three = runs["1"][0], runs["3"][0]
    assert len(one.clips) == 10
    np.testing.assert_array_equal(runs["1"][2], runs["3"][2])  # the same features, in window order, bit for bit
    assert len(np.unique(runs["1"][2], axis=0)) >= 5  # (windows differ: an order change would show)
    assert [c.text for c in one.clips] == [c.text for c in three.clips]
    assert [c.text for c in one.segments] == [c.text for c in three.segments]
    assert one.summary.text == three.summary.text
    assert set(runs["1"][1]) == {threading.current_thread().name}  # one worker: the caller's thread
    workers_seen = set(runs["3"][1])
    assert len(runs["3"][1]) == 5 and len(workers_seen) >= 2
    assert all(n.startswith("videorecap-encoder") for n in workers_seen)


def test_feature_files_are_identical_with_several_encoder_batches_at_once(tmp_path, monkeypatch, one_torch_thread):
    from videorecap.config import RecapConfig
    from videorecap.model.encoder import VideoEncoder
    from videorecap.video import encode
    from videorecap.video.features import extract_features
    from videorecap.video.testing import make_video

    enc = VideoEncoder(RecapConfig.from_name("recap-tiny").encoder)
    video = make_video(tmp_path / "v.mp4", duration=30.0, fps=2.0, size=(32, 24))
    seen = _record_threads(monkeypatch, encode, "encode_batch")
    out = {}
    for workers in ("1", "2"):
        monkeypatch.setenv(runtime.ENCODER_WORKERS_ENV, workers)
        seen.clear()
        out[workers] = extract_features(video, enc, batch_size=2, all_tokens=True), set(seen)
    np.testing.assert_array_equal(out["1"][0], out["2"][0])  # bit for bit
    assert out["1"][0].shape[0] == 8
    assert out["1"][1] == {threading.current_thread().name}
    assert len(out["2"][1]) == 2 and all(n.startswith("videorecap-encoder") for n in out["2"][1])


def test_leaving_early_stops_the_forward_passes_being_run_and_waits_for_the_threads():
    class Slow(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.steps = torch.nn.ModuleList(torch.nn.Identity() for _ in range(200))
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for step in self.steps:
                self.calls += 1
                time.sleep(0.01)
                x = step(x)
            return x

    slow = Slow()
    started = threading.Barrier(3, timeout=10)

    def fn(i: int) -> torch.Tensor:
        started.wait()
        return slow(torch.zeros(1))

    def items():
        yield from (0, 1)
        started.wait()  # both workers are in a forward pass of 200 steps (2 s) ...
        raise KeyboardInterrupt  # ... when Ctrl-C comes in the caller's thread

    with pytest.raises(KeyboardInterrupt):
        with ParallelMap(fn, items(), workers=2, interrupts=slow, name="test-worker") as results:
            list(results)
    assert not _worker_threads()  # none is left computing (an exiting process would abort)
    assert slow.calls <= 2  # they stopped at their next submodule instead of running 2 x 200 steps
    assert not slow._forward_pre_hooks and not slow.steps[0]._forward_pre_hooks  # the checks are removed
    assert slow.steps[0](torch.ones(1)).item() == 1.0  # and the module works as before
