from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from videorecap import cli
from videorecap.video import features as features_mod
from videorecap.video.features import (
    FeatureJob,
    extract_features,
    extract_job,
    run_jobs,
    video_jobs,
)
from videorecap.video.io import collect_videos
from videorecap.video.testing import make_audio_only, make_video, truncate


class MeanEncoder(nn.Module):
    """Stand-in encoder: token t = per-frame channel means, CLS = their mean. Counts the windows it sees."""

    def __init__(self, fail_after: int | None = None, scale: float = 1.0) -> None:
        super().__init__()
        self.config = SimpleNamespace(num_frames=4, image_size=16, width=3)
        self.seen = 0
        self.fail_after = fail_after
        # its "weights": two encoders of other scales have the same geometry but other outputs
        self.register_buffer("scale", torch.tensor(scale))

    def forward(self, x: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        if self.fail_after is not None and self.seen >= self.fail_after:
            raise KeyboardInterrupt  # the run is killed
        self.seen += x.shape[0]
        tok = x.mean(dim=(3, 4)).permute(0, 2, 1)  # (B, T, 3)
        out = torch.cat([tok.mean(1, keepdim=True), tok], 1) * self.scale  # (B, 1 + T, 3)
        return out[:, 0] if cls_only else out


def test_features_one_row_per_4s_window(videos):
    f = extract_features(videos["cfr"], MeanEncoder(), batch_size=2)
    assert f.shape == (3, 3) and f.dtype == np.float32  # ceil(10 / 4)
    # the pattern brightens over time: later windows have larger features
    assert np.all(np.diff(f[:, 0]) > 0)


def test_features_with_the_real_tiny_encoder(videos):
    from videorecap.config import RecapConfig
    from videorecap.model.encoder import VideoEncoder

    enc = VideoEncoder(RecapConfig.from_name("recap-tiny").encoder)
    f = extract_features(videos["long"], enc, batch_size=3)
    assert f.shape == (math.ceil(30 / 4), enc.config.width) and f.dtype == np.float32
    tokens = extract_features(videos["long"], enc, batch_size=3, all_tokens=True)
    assert tokens.shape == (8, enc.config.num_tokens, enc.config.width)
    np.testing.assert_allclose(tokens[:, 0], f, rtol=1e-5, atol=1e-5)
    # batching does not change the result
    np.testing.assert_allclose(extract_features(videos["long"], enc, batch_size=1), f, rtol=1e-5, atol=1e-5)


def test_interrupted_video_resumes_from_chunks(videos, tmp_path: Path):
    chunks = tmp_path / "chunks"
    full = extract_features(videos["long"], MeanEncoder(), batch_size=2)  # 8 windows
    with pytest.raises(KeyboardInterrupt):
        extract_features(videos["long"], MeanEncoder(fail_after=4), batch_size=2, chunk_dir=chunks, chunk_windows=2)
    assert sorted(p.name for p in (chunks / "long").glob("c*.npz")) == ["c00000.npz", "c00001.npz"]
    again = MeanEncoder()
    resumed = extract_features(videos["long"], again, batch_size=2, chunk_dir=chunks, chunk_windows=2)
    assert again.seen == 4  # only the missing half was encoded
    np.testing.assert_array_equal(resumed, full)
    assert not (chunks / "long").exists()  # cleaned up


def test_a_damaged_chunk_is_recomputed_with_a_warning(videos, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    chunks = tmp_path / "chunks"
    full = extract_features(videos["long"], MeanEncoder(), batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        extract_features(videos["long"], MeanEncoder(fail_after=4), batch_size=2, chunk_dir=chunks, chunk_windows=2)
    damaged = chunks / "long" / "c00001.npz"
    damaged.write_bytes(damaged.read_bytes()[:40])  # a disk that lost the end of the file
    again = MeanEncoder()
    resumed = extract_features(videos["long"], again, batch_size=2, chunk_dir=chunks, chunk_windows=2)
    assert again.seen == 6 and "c00001.npz: not a readable cache entry" in caplog.text
    np.testing.assert_array_equal(resumed, full)


def test_resuming_with_another_encoder_starts_the_video_over(videos, tmp_path: Path):
    chunks = tmp_path / "chunks"
    with pytest.raises(KeyboardInterrupt):  # encoder A stores the first two chunks, then the run is killed
        extract_features(videos["long"], MeanEncoder(fail_after=4), batch_size=2, chunk_dir=chunks, chunk_windows=2)
    assert len(list((chunks / "long").glob("c*.npz"))) == 2
    b = MeanEncoder(scale=2.0)  # same geometry, other weights
    resumed = extract_features(videos["long"], b, batch_size=2, chunk_dir=chunks, chunk_windows=2)
    assert b.seen == 8  # nothing of A's was reused
    np.testing.assert_array_equal(resumed, extract_features(videos["long"], MeanEncoder(scale=2.0), batch_size=2))


@pytest.mark.parametrize("second", ["bf16", "fp32"])
def test_resuming_with_another_precision_starts_the_video_over(videos, tmp_path: Path, second: str):
    # fp32-onednn and fp32 (or a compiled encoder) give rows that differ in their last bits: one output never mixes
    # the two, while a resume with the precision of the interrupted run keeps its chunks
    chunks = tmp_path / "chunks"
    kw = {"batch_size": 2, "chunk_dir": chunks, "chunk_windows": 2}
    with pytest.raises(KeyboardInterrupt):
        extract_features(videos["long"], MeanEncoder(fail_after=4), precision="fp32-onednn", **kw)
    again = MeanEncoder()
    extract_features(videos["long"], again, precision=second, **kw)
    assert again.seen == 8  # nothing of the fp32-onednn run was reused
    with pytest.raises(KeyboardInterrupt):
        extract_features(videos["long"], MeanEncoder(fail_after=4), precision=second, **kw)
    same = MeanEncoder()
    extract_features(videos["long"], same, precision=second, **kw)
    assert same.seen == 4


def test_resuming_with_a_compiled_encoder_starts_the_video_over(videos, tmp_path: Path, monkeypatch):
    from videorecap.compiled import CompiledEncoder

    # what the compiled code computes is tested in test_compiled.py; here only which chunks a resume keeps
    monkeypatch.setattr(CompiledEncoder, "forward", lambda self, x, cls_only=False: self.encoder(x, cls_only))
    kw = {"batch_size": 2, "chunk_dir": tmp_path / "chunks", "chunk_windows": 2, "precision": "fp32"}
    with pytest.raises(KeyboardInterrupt):
        extract_features(videos["long"], MeanEncoder(fail_after=4), **kw)
    inner = MeanEncoder()
    extract_features(videos["long"], CompiledEncoder(inner, "fp32", cache=tmp_path / "cache"), **kw)
    assert inner.seen == 8


def test_a_finished_output_of_another_encoder_is_recomputed_not_skipped(videos, tmp_path: Path, caplog):
    out = tmp_path / "out"
    job = FeatureJob(videos["cfr"], "cfr")
    assert extract_job(job, out, MeanEncoder()).status == "done"
    assert extract_job(job, out, MeanEncoder()).status == "skipped"  # the same encoder: reused
    b = MeanEncoder(scale=2.0)  # same geometry, other weights: the old file would pass every shape check
    assert extract_job(job, out, b).status == "done" and "another encoder" in caplog.text
    fresh = tmp_path / "fresh"
    extract_job(job, fresh, MeanEncoder(scale=2.0))
    np.testing.assert_array_equal(np.load(out / "cfr.npy"), np.load(fresh / "cfr.npy"))
    assert extract_job(job, out, MeanEncoder(scale=2.0)).status == "skipped"
    # a folder from before the record existed: its outputs are still reused after the usual checks
    (out / ".videorecap-features.json").unlink()
    assert extract_job(job, out, MeanEncoder(scale=2.0)).status == "skipped"


def test_an_output_is_recorded_and_checked_under_the_encoder_id_given(videos, tmp_path: Path, caplog):
    # Ray's per-video step: an actor's encoder (a GPU's bf16 weights) records the driver's id, which a rerun checks
    from videorecap.store import weights_hash

    out, job, driver = tmp_path / "out", FeatureJob(videos["cfr"], "cfr"), weights_hash(MeanEncoder())
    assert extract_job(job, out, MeanEncoder(scale=2.0), encoder_id=driver).status == "done"
    assert extract_job(job, out, MeanEncoder()).status == "skipped"  # what the driver of a rerun sees
    assert extract_job(job, out, MeanEncoder(scale=2.0)).status == "done" and "another encoder" in caplog.text


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[:100]),  # the data cut short
        lambda p: p.write_bytes(p.read_bytes()[:20]),  # the header cut short
        lambda p: np.save(p, np.load(p)[:2]),  # a row missing
        lambda p: np.save(p, np.load(p).astype(np.float16)),  # another dtype
        lambda p: np.save(p, np.load(p)[:, :2]),  # another width
        lambda p: np.save(p, np.load(p).reshape(-1)),  # not 2-D
    ],
    ids=["data", "header", "rows", "dtype", "width", "ndim"],
)
def test_a_damaged_output_is_recomputed_with_a_warning(videos, tmp_path: Path, caplog, damage):
    out = tmp_path / "out"
    job = FeatureJob(videos["cfr"], "cfr")
    assert extract_job(job, out, MeanEncoder()).status == "done"
    whole = np.load(out / "cfr.npy")
    damage(out / "cfr.npy")
    r = extract_job(job, out, MeanEncoder())
    assert r.status == "done" and "cfr.npy" in caplog.text and "recomputing" in caplog.text
    np.testing.assert_array_equal(np.load(out / "cfr.npy"), whole)


def test_a_damaged_tokens_output_is_recomputed(videos, tmp_path: Path, caplog):
    out = tmp_path / "out"
    job = FeatureJob(videos["cfr"], "cfr")
    assert extract_job(job, out, MeanEncoder(), all_tokens=True).status == "done"
    tokens = np.load(out / "cfr.tokens.npy")
    np.save(out / "cfr.tokens.npy", tokens[:1])
    assert extract_job(job, out, MeanEncoder(), all_tokens=True).status == "done" and "recomputing" in caplog.text
    np.testing.assert_array_equal(np.load(out / "cfr.tokens.npy"), tokens)
    assert extract_job(job, out, MeanEncoder(), all_tokens=True).status == "skipped"


def test_extract_job_atomic_skip_and_segments(videos, tmp_path: Path):
    out = tmp_path / "out"
    job = FeatureJob(videos["cfr"], "cfr")
    r = extract_job(job, out, MeanEncoder())
    assert r.status == "done" and r.windows == 3
    assert np.load(out / "cfr.npy").shape == (3, 3)
    assert extract_job(job, out, MeanEncoder()).status == "skipped"
    # no temp files left; only the record of which encoder made each output
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".videorecap-features.json"]
    seg = extract_job(FeatureJob(videos["long"], "sid7", 2.0, 20.0), out, MeanEncoder())
    assert seg.status == "done" and np.load(out / "sid7.npy").shape == (45, 3)  # at least 45 windows


def test_bad_videos_fail_alone(tmp_path: Path):
    d = tmp_path / "in"
    make_video(d / "good.mp4", duration=5, fps=4)
    (d / "notes.txt").write_text("not a video")  # ignored: not a video name
    (d / "fake.mp4").write_text("not a video either")
    (d / "empty.mkv").write_bytes(b"")
    make_audio_only(d / "audio.mp4")
    truncate(make_video(d / "cut.mkv", duration=20, fps=5, codec="ffv1"), 0.5)
    make_video(d / "tiny.mkv", duration=1, fps=4, size=(17, 9), codec="ffv1")
    make_video(d / "portrait.mp4", duration=2, fps=4, size=(16, 32))
    make_video(d / "tenbit.mp4", duration=2, fps=4, codec="libx265", pix_fmt="yuv420p10le")
    jobs = video_jobs(collect_videos([d]))
    assert sorted(j.key for j in jobs) == ["audio", "cut", "empty", "fake", "good", "portrait", "tenbit", "tiny"]
    results = {r.job.key: r for r in run_jobs(jobs, tmp_path / "out", MeanEncoder())}
    assert {k for k, r in results.items() if r.status == "done"} == {"good", "tiny", "portrait", "tenbit"}
    for key, what in [
        ("fake", "not a readable"),
        ("empty", "empty"),
        ("audio", "no video stream"),
        ("cut", "truncated"),
    ]:
        err = results[key].error
        assert results[key].status == "failed" and what in err and key in err and "\n" not in err
    assert np.load(tmp_path / "out" / "tiny.npy").shape == (1, 3)  # shorter than a window: one window
    # keep-partial keeps the windows decoded before the damage
    r = extract_job(FeatureJob(d / "cut.mkv", "cut"), tmp_path / "out", MeanEncoder(), allow_partial=True)
    assert r.status == "done" and 0 < r.windows < 5


def test_cli_features(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    d = tmp_path / "in"
    make_video(d / "a.mp4", duration=9, fps=4)
    make_video(d / "b.webm", duration=3, fps=4, codec="libvpx-vp9")
    (d / "broken.mp4").write_bytes(b"\x00" * 100)
    out = tmp_path / "feats"
    argv = ["features", str(d), "-o", str(out), "--random-encoder", "recap-tiny", "--no-progress"]
    assert cli.main(argv) == 1  # some inputs failed (docs/cli.md)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    errors = [line for line in cap.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "broken.mp4" in errors[0]
    assert "2 done" in cap.out
    assert np.load(out / "a.npy").shape == (3, 32) and np.load(out / "b.npy").shape == (1, 32)
    # started again: finished videos are skipped
    assert cli.main(argv) == 1
    assert "0 done, 2 skipped" in capsys.readouterr().out
    # a missing input is a one-line user error
    assert cli.main(["features", str(tmp_path / "nope"), "-o", str(out), "--random-encoder", "recap-tiny"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_shards_across_ranks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    d = tmp_path / "in"
    for name in "abcd":
        make_video(d / f"{name}.mp4", duration=2, fps=4)
    outs = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        out = tmp_path / f"out{rank}"
        assert cli.main(["features", str(d), "-o", str(out), "--random-encoder", "recap-tiny", "--no-progress"]) == 0
        outs.append({p.stem for p in out.glob("*.npy")})
    assert outs[0] | outs[1] == {"a", "b", "c", "d"} and not outs[0] & outs[1]
    assert len(outs[0]) == 2


def test_cli_features_with_a_saved_encoder(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # --encoder takes a full model checkpoint or an encoder-only folder; both give the encoder's CLS features
    from videorecap.checkpoint import save_encoder, save_pretrained
    from videorecap.config import RecapConfig
    from videorecap.model.recap import VideoRecap

    torch.manual_seed(3)
    model = VideoRecap(RecapConfig.from_name("recap-tiny")).eval()
    save_pretrained(model, tmp_path / "model")
    save_encoder(model.encoder, tmp_path / "enc")
    video = make_video(tmp_path / "in" / "a.mp4", duration=9, fps=4)
    expected = extract_features(video, model.encoder, batch_size=2)
    for src in ("model", "enc"):
        out = tmp_path / f"feats-{src}"
        argv = ["features", str(video), "-o", str(out), "--encoder", str(tmp_path / src), "--no-progress"]
        assert cli.main(argv) == 0, capsys.readouterr().err
        np.testing.assert_allclose(np.load(out / "a.npy"), expected, rtol=1e-5, atol=1e-5)
    assert cli.main(["features", str(video), "-o", str(tmp_path / "x"), "--encoder", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_an_unusable_chunk_dir_is_one_line_before_any_video(videos, tmp_path, capsys):
    (tmp_path / "afile").write_text("not a folder")
    argv = ["features", str(videos["cfr"]), "-o", str(tmp_path / "o"), "--random-encoder", "recap-tiny",
            "--chunk-dir", str(tmp_path / "afile"), "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--chunk-dir" in err[0] and "not a folder" in err[0]
    assert not list((tmp_path / "o").glob("*.npy"))


def test_an_unexpected_error_fails_one_video_and_the_others_go_on(videos, tmp_path):
    class Flaky(MeanEncoder):
        def forward(self, x: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
            if x.shape[0] == 3:  # only the 10-s video has a batch of 3 windows
                raise RuntimeError("out of memory on the device")
            return super().forward(x, cls_only)

    jobs = video_jobs([videos["cfr"], videos["long"]])
    results = {r.job.key: r for r in run_jobs(jobs, tmp_path / "out", Flaky(), batch_size=8)}
    assert results["cfr"].status == "failed" and "RuntimeError: out of memory" in results["cfr"].error
    assert "\n" not in results["cfr"].error
    assert results["long"].status == "done" and (tmp_path / "out" / "long.npy").exists()


def test_video_ids_are_safe_file_names_and_unique_ignoring_case(tmp_path):
    from videorecap.errors import InputError

    jobs = video_jobs([tmp_path / "...mp4", tmp_path / "a\x00b.mp4", tmp_path / ("é" * 150 + ".mp4")])
    for j in jobs:
        assert (tmp_path / f"{j.key}.npy").resolve().parent == tmp_path.resolve()
    assert [j.key for j in jobs][:2] == ["__", "a_b"]
    with pytest.raises(InputError, match="same video id"):  # one ID.npy on a case-insensitive disk
        video_jobs([tmp_path / "A" / "Walk.mp4", tmp_path / "B" / "walk.mp4"])


def test_cli_cleans_leftovers_of_a_killed_run_and_keeps_user_files(tmp_path: Path, capsys):
    video = make_video(tmp_path / "in" / "a.mp4", duration=2, fps=4)
    out = tmp_path / "out"
    out.mkdir()
    partial = [out / ".a.npy.x1y2z3w4.tmp", out / ".chunks" / "a" / ".chunk-0.npz.abcd_123.tmp"]
    partial[1].parent.mkdir(parents=True)
    for p in partial:
        p.write_bytes(b"half")
    (out / "notes.tmp").write_text("mine")
    argv = ["features", str(video), "-o", str(out), "--random-encoder", "recap-tiny", "--no-progress"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert not [p for p in partial if p.exists()] and (out / "notes.tmp").read_text() == "mine"
    assert (out / "a.npy").is_file()


def test_a_run_killed_while_writing_an_output_never_leaves_it_unrecorded(videos, tmp_path: Path, monkeypatch):
    """The encoder record is written before `ID.npy`: a kill between the two leaves an output to recompute, not an
    output that a folder without a record would reuse as made by an unknown encoder."""
    out, chunks = tmp_path / "out", tmp_path / "chunks"
    job = FeatureJob(videos["long"], "long")

    def killed(*a, **k):
        raise KeyboardInterrupt  # the process dies at this point

    monkeypatch.setattr(features_mod, "_record_encoder", killed)
    with pytest.raises(KeyboardInterrupt):
        extract_job(job, out, MeanEncoder(), chunk_dir=chunks, chunk_windows=2)
    monkeypatch.undo()
    assert not (out / "long.npy").exists()
    assert extract_job(job, out, MeanEncoder(), chunk_dir=chunks, chunk_windows=2).status == "done"
    assert extract_job(job, out, MeanEncoder(), chunk_dir=chunks, chunk_windows=2).status == "skipped"


def test_chunks_left_by_a_run_killed_after_its_output_are_dropped_on_the_skip(videos, tmp_path: Path):
    out, chunks = tmp_path / "out", tmp_path / "chunks"
    job = FeatureJob(videos["long"], "long")
    assert extract_job(job, out, MeanEncoder(), chunk_dir=chunks, chunk_windows=2).status == "done"
    assert not (chunks / "long").exists()
    (chunks / "long").mkdir(parents=True)
    (chunks / "long" / "c00000.npz").write_bytes(b"left by a killed run")
    assert extract_job(job, out, MeanEncoder(), chunk_dir=chunks, chunk_windows=2).status == "skipped"
    assert not (chunks / "long").exists()
