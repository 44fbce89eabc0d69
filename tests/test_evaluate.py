import json

import numpy as np
import pytest
import torch
from _helpers import tiny_recap, word_tokenizer

import videorecap.evaluate as ev
from videorecap.checkpoint import save_pretrained
from videorecap.commands._options import parse_max_tokens
from videorecap.data import hcap
from videorecap.errors import InputError, MissingDependencyError
from videorecap.evaluate import EvalOptions, evaluate, parse_levels, previous_text_source
from videorecap.metrics import load_items, match_items
from videorecap.pipeline import Captioner

WORDS = [f"w{i}" for i in range(100)]
FAST = ("cider", "rouge_l")
DURATIONS = {"vA": 40.0, "vB": 24.0}


pytestmark = pytest.mark.usefixtures("one_thread")


def make_data(root, rng, with_videos=False):
    """Tiny Ego4D-HCap val files, CLS and all-token features (and optionally videos) for two videos."""
    feats = root / "features"
    feats.mkdir(parents=True)
    clips, segments, videos = [], [], []
    for vid, dur in DURATIONS.items():
        n = int(np.ceil(dur / 4))
        np.save(feats / f"{vid}.npy", rng.standard_normal((n, 32)).astype(np.float32))
        np.save(feats / f"{vid}.tokens.npy", rng.standard_normal((n, 33, 32)).astype(np.float16))
        vclips = []
        for i in range(n):
            caption = " ".join(rng.choice(WORDS, size=5, replace=False))
            vclips.append((vid, 4.0 * i, min(4.0 * i + 4, dur), caption))
        clips += vclips
        descs = []
        for s in range(0, int(dur), 12):
            e = min(s + 12.0, dur)
            inside = [c for c in vclips if c[1] >= s and c[2] <= e]
            desc = " ".join(rng.choice(WORDS, size=6, replace=False))
            descs.append(desc)
            segments.append(
                {
                    "vid": vid,
                    "start_sec": float(s),
                    "end_sec": e,
                    "captions_pred": [list(c) for c in inside],
                    "captions_gt": [{"narration_text": c[3]} for c in inside],
                    "segment_description": desc,
                }
            )
        summary = " ".join(rng.choice(WORDS, size=8, replace=False))
        videos.append(
            {
                "vid": vid,
                "start_sec": 0.0,
                "end_sec": dur,
                "segment_descriptions": descs,
                "segment_descriptions_pred": list(descs),
                "video_summary": summary,
            }
        )
    hcap.save_clips(root / "clips_val.pkl", clips)
    hcap.save_segments(root / "segments_val.pkl", segments)
    hcap.save_videos(root / "videos_val.json", videos)
    if with_videos:
        from videorecap.video.testing import make_video

        for vid, dur in DURATIONS.items():
            make_video(root / "videos" / f"{vid}.mp4", duration=dur, fps=1.0, size=(32, 24))
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    tok = word_tokenizer(len(WORDS))
    root = tmp_path_factory.mktemp("models")
    for level in ("clip", "segment", "video"):
        save_pretrained(tiny_recap(level), root / "recap" / level, tokenizer=tok)
    save_pretrained(tiny_recap("clip"), root / "clip-only", tokenizer=tok)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("data"), np.random.default_rng(0))


@pytest.fixture(scope="module")
def captioner(models):
    return Captioner.load(models / "recap")


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_all_levels_write_predictions_results_and_counts(captioner, data, tmp_path):
    rep = evaluate(captioner, data, tmp_path, EvalOptions(metrics=FAST, batch_size=3))
    clips = hcap.load_clips(data / "clips_val.pkl")
    for lv, n in (("clip", 16), ("segment", 6), ("video", 2)):
        recs = read_jsonl(tmp_path / f"predictions_{lv}.jsonl")
        assert len(recs) == n and [r["index"] for r in recs] == list(range(n))
        assert all(r["level"] == lv and isinstance(r["text"], str) and r["reference"] for r in recs)
    recs = read_jsonl(tmp_path / "predictions_clip.jsonl")
    assert [(r["video_id"], r["start"], r["end"], r["reference"]) for r in recs] == [
        (c.vid, c.start, c.end, c.caption) for c in clips
    ]
    assert sum(bool(r["text"]) for r in recs) > 8  # the model really generated something
    res = json.loads((tmp_path / "results.json").read_text())
    assert res == rep.results
    assert res["format"] == "videorecap.evaluation" and res["protocol"] == "original"
    assert set(res["scores"]) == {"clip", "segment", "video"}
    assert set(res["scores"]["clip"]) == {"cider", "rouge_l"}
    assert res["levels"]["clip"]["counts"] == {
        "rows_in_file": 16,
        "evaluated": 16,
        "scored": 16,
        "no_reference": 0,
        "empty_predictions": sum(not r["text"] for r in recs),
    }
    assert res["levels"]["clip"]["inputs"] == "tokens"  # all-token features are present
    assert res["levels"]["segment"]["inputs"] == "features"
    assert res["levels"]["segment"]["previous_text"] == {
        "field": "captions_pred",
        "file": "segments_val.pkl",
        "holds": "ground truth",
    }
    assert res["settings"]["max_new_tokens"] == {"clip": 12, "segment": 16, "video": 20}  # recap-tiny's own
    assert res["model"]["segment"]["preset"] == "recap-tiny"
    assert "Clip caption" in rep.table and "Video summary" in rep.table
    assert not list(tmp_path.glob("*.partial"))


def test_rerun_generates_nothing_and_writes_identical_results(captioner, data, tmp_path, monkeypatch):
    evaluate(captioner, data, tmp_path, EvalOptions(metrics=FAST, levels=("clip", "segment")))
    first = (tmp_path / "results.json").read_bytes()
    preds = (tmp_path / "predictions_segment.jsonl").read_bytes()

    def boom(*a, **kw):
        raise AssertionError("generated again")

    monkeypatch.setattr(ev, "_predict", boom)
    rep = evaluate(captioner, data, tmp_path, EvalOptions(metrics=FAST, levels=("clip", "segment")))
    assert (tmp_path / "results.json").read_bytes() == first  # no timestamps: reruns are comparable
    assert (tmp_path / "predictions_segment.jsonl").read_bytes() == preds
    assert all(r.generated == 0 for r in rep.levels.values())
    # another protocol or metric set re-scores without generating
    rep = evaluate(captioner, data, tmp_path, EvalOptions(metrics=("bleu",), levels=("clip",)))
    assert set(rep.results["scores"]["clip"]) == {"bleu_1", "bleu_2", "bleu_3", "bleu_4"}


def test_changed_settings_regenerate(captioner, data, tmp_path):
    evaluate(captioner, data, tmp_path, EvalOptions(metrics=FAST, levels=("clip",)))
    rep = evaluate(captioner, data, tmp_path, EvalOptions(metrics=FAST, levels=("clip",), max_new_tokens={"clip": 3}))
    assert rep.levels["clip"].generated == 16
    recs = read_jsonl(tmp_path / "predictions_clip.jsonl")
    assert max(len(r["text"].split()) for r in recs) <= 3


def test_num_features_reach_the_sampling_and_the_results(captioner, data, tmp_path, monkeypatch):
    import videorecap.infer.batch as infer_batch

    seen: dict[str, set] = {"segment": set(), "video": set()}
    real_generate = infer_batch.generate_ids

    def spy(model, level, **kw):
        seen[level].add(kw["video"].shape[1])
        return real_generate(model, level, **kw)

    monkeypatch.setattr(infer_batch, "generate_ids", spy)
    levels = ("segment", "video")
    model_io = {lv: captioner.model(lv).config.io.features(lv) for lv in levels}
    rep = evaluate(captioner, data, tmp_path, EvalOptions(metrics=FAST, levels=levels))
    assert seen == {lv: {model_io[lv].num_features} for lv in levels}  # by default, the models' level I/O
    recorded = {lv: rep.results["levels"][lv]["features"] for lv in levels}
    assert recorded == {lv: {"num_features": f.num_features, "sampling": f.sampling} for lv, f in model_io.items()}

    seen = {"segment": set(), "video": set()}
    rep = evaluate(captioner, data, tmp_path, EvalOptions(metrics=FAST, levels=levels, num_features={"segment": 3}))
    assert seen == {"segment": {3}, "video": set()}  # the segment level is generated again; the video level is kept
    assert rep.results["levels"]["segment"]["features"]["num_features"] == 3
    assert captioner.model("segment").config.io.features("segment") == model_io["segment"]  # the model is unchanged


def test_clip_every_and_limit(captioner, data, tmp_path):
    rep = evaluate(captioner, data, tmp_path, EvalOptions(metrics=FAST, levels=("clip",), clip_every=5))
    clips = hcap.load_clips(data / "clips_val.pkl")
    recs = read_jsonl(tmp_path / "predictions_clip.jsonl")
    assert [(r["video_id"], r["start"]) for r in recs] == [(c.vid, c.start) for c in clips[::5]]  # rows 0, 5, 10, 15
    assert rep.results["levels"]["clip"]["counts"]["evaluated"] == 4
    assert rep.results["levels"]["clip"]["every"] == 5
    rep = evaluate(captioner, data, tmp_path / "b", EvalOptions(metrics=FAST, levels=("clip",), clip_every=5, limit=2))
    starts = [r["start"] for r in read_jsonl(tmp_path / "b" / "predictions_clip.jsonl")]
    assert starts == [clips[0].start, clips[5].start]
    # clip_every applies to the clip level only
    rep = evaluate(captioner, data, tmp_path / "c", EvalOptions(metrics=FAST, levels=("segment",), clip_every=5))
    assert rep.results["levels"]["segment"]["counts"]["evaluated"] == 6


def test_resume_after_interruption_is_identical_and_skips_finished_items(captioner, data, tmp_path, monkeypatch):
    opts = EvalOptions(metrics=FAST, levels=("clip", "segment"), batch_size=3)
    evaluate(captioner, data, tmp_path / "full", opts)
    full = read_jsonl(tmp_path / "full" / "predictions_clip.jsonl")

    real = ev._predict
    calls = {"n": 0, "items": 0}

    def dying(model, tok, level, batch, decode, device):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(model, tok, level, batch, decode, device)

    monkeypatch.setattr(ev, "_predict", dying)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        evaluate(captioner, data, out, opts)
    partial = out / "predictions_clip.partial"
    assert partial.exists() and not (out / "predictions_clip.jsonl").exists()
    # a batch file damaged on disk is dropped and generated again
    damaged = partial / "000000003.npz"
    damaged.write_bytes(damaged.read_bytes()[:-20])

    def counting(model, tok, level, batch, decode, device):
        if level == "clip":
            calls["items"] += len(batch["references"])
        return real(model, tok, level, batch, decode, device)

    monkeypatch.setattr(ev, "_predict", counting)
    rep = evaluate(captioner, data, out, opts)
    assert calls["items"] == 16 - 3  # two batches of 3 were finished before the interruption; one was damaged
    assert rep.levels["clip"].generated == 13
    assert read_jsonl(out / "predictions_clip.jsonl") == full
    seg = (tmp_path / "full" / "predictions_segment.jsonl").read_text()
    assert (out / "predictions_segment.jsonl").read_text() == seg
    assert not partial.exists()


def test_predictions_equal_to_references_get_maximal_scores(captioner, data, tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "_predict", lambda model, tok, level, batch, decode, device: list(batch["references"]))
    rep = evaluate(captioner, data, tmp_path, EvalOptions(metrics=("cider", "rouge_l", "bleu")))
    for lv in ("clip", "segment", "video"):
        s = rep.results["scores"][lv]
        assert s["rouge_l"] == pytest.approx(100.0)
        assert s["bleu_4"] == pytest.approx(100.0, abs=1e-4)
        assert s["cider"] == pytest.approx(1000.0)  # CIDEr-D x100 of identical, distinct captions: 10 x 100


def test_predictions_file_is_readable_by_score(captioner, data, tmp_path):
    evaluate(captioner, data, tmp_path, EvalOptions(metrics=FAST, levels=("segment",)))
    preds = load_items(tmp_path / "predictions_segment.jsonl").items
    refs = load_items(data / "segments_val.pkl").items
    m = match_items(preds, refs)
    assert len(m.matched["segment"]) == 6 and not m.unmatched_preds and not m.unmatched_refs


def test_clip_level_from_pixels(captioner, tmp_path):
    data = make_data(tmp_path / "data", np.random.default_rng(1), with_videos=True)
    rep = evaluate(
        captioner, data, tmp_path / "out", EvalOptions(metrics=FAST, levels=("clip",), clip_input="pixels", limit=5)
    )
    assert rep.results["levels"]["clip"]["inputs"] == "pixels"
    recs = read_jsonl(tmp_path / "out" / "predictions_clip.jsonl")
    assert len(recs) == 5 and any(r["text"] for r in recs)
    # without all-token features, auto picks the videos
    for f in (data / "features").glob("*.tokens.npy"):
        f.unlink()
    rep = evaluate(captioner, data, tmp_path / "auto", EvalOptions(metrics=FAST, levels=("clip",), limit=5))
    assert rep.results["levels"]["clip"]["inputs"] == "pixels"
    assert read_jsonl(tmp_path / "auto" / "predictions_clip.jsonl") == recs


# ---- user errors ------------------------------------------------------------------------------------------------
def test_missing_split_file(captioner, data, tmp_path):
    with pytest.raises(InputError, match=r"clips_test\.pkl: no such file"):
        evaluate(captioner, data, tmp_path, EvalOptions(split="test", metrics=FAST))


def test_level_the_model_cannot_caption(models, data, tmp_path):
    clip_only = Captioner.load(models / "clip-only")
    with pytest.raises(InputError, match="cannot caption the video level"):
        parse_levels("video", clip_only.levels)
    with pytest.raises(InputError, match="cannot caption the segment, video level"):
        evaluate(clip_only, data, tmp_path, EvalOptions(metrics=FAST))
    assert parse_levels("all", clip_only.levels) == ("clip",)
    with pytest.raises(InputError, match="unknown level"):
        parse_levels("clips", clip_only.levels)


def test_missing_features_fail_before_generating(captioner, data, tmp_path, monkeypatch):
    d = make_data(tmp_path / "d", np.random.default_rng(2))
    (d / "features" / "vB.npy").unlink()
    monkeypatch.setattr(ev, "_predict", lambda *a: pytest.fail("generated before checking inputs"))
    with pytest.raises(InputError, match=r"vB\.npy: feature file not found for the segment level"):
        evaluate(captioner, d, tmp_path / "o", EvalOptions(metrics=FAST))
    with pytest.raises(InputError, match=r"nope: no such folder \(--features\)"):
        evaluate(captioner, data, tmp_path / "o", EvalOptions(metrics=FAST, features_dir=tmp_path / "nope"))
    with pytest.raises(InputError, match="the clip level from pixels needs --videos"):
        evaluate(captioner, data, tmp_path / "o", EvalOptions(metrics=FAST, levels=("clip",), clip_input="pixels"))


def test_missing_java_fails_before_generating(captioner, data, tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "_predict", lambda *a: pytest.fail("generated before checking for Java"))
    with pytest.raises(MissingDependencyError, match="METEOR needs Java"):
        evaluate(captioner, data, tmp_path, EvalOptions(java=str(tmp_path / "no-java")))
    # a Java that exists but does not run used to fail only when scoring, after all generation
    with pytest.raises(MissingDependencyError, match="'/bin/false' is not a working Java"):
        evaluate(captioner, data, tmp_path, EvalOptions(java="/bin/false"))


def test_missing_previous_text_is_a_user_error(captioner, tmp_path):
    d = make_data(tmp_path / "d", np.random.default_rng(3))
    rows = hcap.load_videos(d / "videos_val.json")
    del rows[1]["segment_descriptions_pred"]
    hcap.save_videos(d / "videos_val.json", rows)
    with pytest.raises(InputError, match=r"videos_val\.json: row 1 \(vB\) has no 'segment_descriptions_pred'"):
        evaluate(captioner, d, tmp_path / "o", EvalOptions(metrics=FAST, levels=("video",)))


def test_bad_options():
    with pytest.raises(InputError, match="clip-every"):
        EvalOptions(clip_every=0)
    with pytest.raises(InputError, match="unknown metric"):
        EvalOptions(metrics=("cider", "spice"))
    with pytest.raises(InputError, match="unknown split"):
        EvalOptions(split="dev")


# ---- helpers ----------------------------------------------------------------------------------------------------
def test_parse_max_tokens():
    assert parse_max_tokens("clip=77,segment=77,video=120") == {"clip": 77, "segment": 77, "video": 120}
    assert parse_max_tokens("50") == {"clip": 50, "segment": 50, "video": 50}
    assert parse_max_tokens("50,video=100") == {"clip": 50, "segment": 50, "video": 100}
    with pytest.raises(InputError, match="unknown level"):
        parse_max_tokens("summary=3")
    with pytest.raises(InputError, match="not N or LEVEL=N"):
        parse_max_tokens("clip=many")


def test_previous_text_source():
    gt = {"vid": "v", "captions_pred": [["v", 0, 4, "a b"]], "captions_gt": [{"narration_text": "a b"}]}
    gen = {"vid": "v", "captions_pred": [["v", 0, 4, "a c"]], "captions_gt": [{"narration_text": "a b"}]}
    assert previous_text_source("segment", [gt, gt]) == "ground truth"
    assert previous_text_source("segment", [gen]) == "generated"
    assert previous_text_source("segment", [gt, gen]) == "mixed (1 of 2 rows are ground truth)"
    bare = {"vid": "v", "start_sec": 0, "end_sec": 8, "captions_pred": [["v", 0, 4, "a b"]]}
    assert previous_text_source("segment", [bare]) == "unknown"
    clip_rows = [hcap.ClipRow("v", 0.0, 4.0, "a b", None), hcap.ClipRow("v", 8.0, 12.0, "x", None)]
    assert previous_text_source("segment", [bare], clip_rows) == "ground truth"
    vid = {"vid": "v", "segment_descriptions": ["s1", "s2"], "segment_descriptions_pred": ["s1", "s3"]}
    assert previous_text_source("video", [vid]) == "generated"


@pytest.mark.slow
def test_default_metrics_include_meteor_from_one_java_process(captioner, data, tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "_predict", lambda model, tok, level, batch, decode, device: list(batch["references"]))
    rep = evaluate(captioner, data, tmp_path, EvalOptions())
    for lv in ("clip", "segment", "video"):
        assert rep.results["scores"][lv]["meteor"] == pytest.approx(100.0, abs=1e-3)
    assert " M" in rep.table and "100.00" in rep.table.splitlines()[2]
