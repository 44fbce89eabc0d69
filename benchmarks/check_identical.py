"""Fingerprint every output of `caption`, `evaluate` and `train` on the synthetic world, to compare two commits.

Refactors that must not change behaviour (issue 13: "outputs stay byte-identical") are checked by running this
script once on each commit and comparing the two lists of sha256 sums:

    PYTHONPATH=old/src python benchmarks/check_identical.py --work scratch/a -o a.json
    PYTHONPATH=new/src python benchmarks/check_identical.py --work scratch/b -o b.json
    python benchmarks/check_identical.py --compare a.json b.json

The run (about two minutes on 2 CPU threads) renders a tiny synthetic dataset (3 one-minute videos, 20-s segments),
extracts its features with the bundled recap-synth clip encoder, then with the bundled model:
  - `videorecap caption` of one video, greedy and beam search (every file of the output folder);
  - `videorecap evaluate` of every level, greedy and beam search (results.json and predictions_*.jsonl);
  - `videorecap train` of a 2-step curriculum from the recap-synth preset: the clip captions and segment
    descriptions its generation steps write, the validation captions, and every checkpoint.
Values that are not outputs (timings, dates, absolute paths) are masked before hashing; the masked keys are listed
in MASKED, SKIPPED and STORE_KEYS. Everything runs in subprocesses with one torch thread, so the numbers depend
only on the code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# keys whose values are facts of the run, not of the code (wall times, dates, where the run lived)
MASKED = {"seconds", "elapsed", "elapsed_s", "wall_s", "created", "mtime", "mtime_ns", "samples_per_s"}
# files that only fingerprint the run's settings (their hashes include absolute paths): not outputs
SKIPPED = {".evaluate-state.json", ".videorecap.lock"}  # the lock file of an output folder (videorecap.lock) is empty
# in the resumable store (videorecap.store), the settings hash (absolute paths included) of a folder and an entry
STORE_KEYS = {"store.json": "key", ".npz": "__fingerprint__"}
TRAIN_RECIPE = {
    "kind": "recap",
    "seed": 0,
    "tokenizer": "word-level",
    "model": {"preset": "recap-synth"},
    "data": {"annotations": ".", "videos": "videos", "cache_frames": True, "random_crop": False},
    "validation": {"max_batches": 1, "caption_samples": 4},
    "generate": {"batch_size": 8, "features": True},
    "stages": [
        {"name": "clip", "epochs": 1, "batch_size": 4, "num_workers": 0, "lr": 1e-3, "warmup_steps": 1},
        {"name": "segment", "epochs": 1, "batch_size": 2, "lr": 1e-3, "warmup_steps": 1},
        {"name": "video", "epochs": 1, "batch_size": 1, "lr": 1e-3, "warmup_steps": 1},
    ],
}


def _run(*args: str, cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "videorecap", *args]
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(args)}\n{r.stderr[-3000:]}")


def _bundled() -> Path:
    import videorecap

    return Path(videorecap.__file__).resolve().parent / "assets" / "recap-synth"


def _mask(obj: object, root: str) -> object:
    if isinstance(obj, dict):
        return {k: ("<masked>" if k in MASKED else _mask(v, root)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_mask(v, root) for v in obj]
    if isinstance(obj, str):
        return obj.replace(root, "<work>")
    return obj


def _digest(path: Path, root: Path) -> str:
    if path.suffix == ".safetensors":  # the tensors and the metadata, not the header's key order
        from safetensors import safe_open

        h = hashlib.sha256()
        with safe_open(str(path), "pt") as f:
            h.update(json.dumps(f.metadata(), sort_keys=True).encode())
            for k in sorted(f.keys()):
                h.update(k.encode() + f.get_tensor(k).numpy().tobytes())
        return h.hexdigest()
    if path.suffix == ".pt":  # a training state: the model, optimiser and step, not the unseeded Python/NumPy RNGs
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        state.pop("rng", None)
        h = hashlib.sha256()
        _hash_obj(state, h)
        return h.hexdigest()
    if path.suffix == ".npz":  # the arrays, without the store's settings hash
        import numpy as np

        h = hashlib.sha256()
        with np.load(path, allow_pickle=False) as z:
            for k in sorted(z.files):
                if k != STORE_KEYS[".npz"]:
                    h.update(k.encode() + str(z[k].dtype).encode() + z[k].tobytes())
        return h.hexdigest()
    data = path.read_bytes()
    if path.suffix in (".json", ".jsonl", ".yaml", ".md", ".html", ".srt", ".vtt", ".txt"):
        # where the run and the installed package live are not outputs
        text = data.decode("utf-8").replace(str(root), "<work>").replace(str(_bundled()), "<bundled>")
        if path.suffix == ".json":
            try:
                obj = json.loads(text)
                if path.name == "store.json" and isinstance(obj, dict):
                    obj.pop(STORE_KEYS["store.json"], None)
                text = json.dumps(_mask(obj, "<work>"), sort_keys=True)
            except json.JSONDecodeError:
                pass
        elif path.suffix == ".jsonl":
            rows = [json.dumps(_mask(json.loads(x), "<work>"), sort_keys=True) for x in text.splitlines() if x]
            text = "\n".join(rows)
        # an ISO timestamp anywhere else (html pages, yaml) is a fact of the run too
        text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?", "<time>", text)
        data = text.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _hash_obj(obj: object, h: hashlib._Hash) -> None:
    import torch

    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(str(k).encode())
            _hash_obj(obj[k], h)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _hash_obj(v, h)
    elif isinstance(obj, torch.Tensor):
        h.update(str(obj.dtype).encode() + obj.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    else:
        h.update(repr(obj).encode())


def fingerprint(
    work: Path, with_train: bool, precision: str | None = None, decode_batch: int | None = None
) -> dict[str, str]:
    # --precision goes to features, caption and evaluate; --decode-batch to caption (a commit before issue 15 has
    # neither flag: leave them out there)
    prec = ["--precision", precision] if precision else []
    dbatch = ["--decode-batch", str(decode_batch)] if decode_batch else []
    work.mkdir(parents=True, exist_ok=True)
    model = _bundled()
    data = work / "data"
    if not (data / "world.json").exists():
        _run("synth", "make", "-o", str(data), "--videos", "3", "--minutes", "1", "--segment-seconds", "20",
             "--no-progress", cwd=work)  # fmt: skip
    if not (data / "features").exists():
        _run("features", str(data / "videos"), "-o", str(data / "features"), "--encoder", str(model / "clip"),
             "--all-tokens", "--no-progress", *prec, cwd=work)  # fmt: skip
    for old in ("caption-greedy", "caption-beam", "evaluate-greedy", "evaluate-beam", "train"):
        shutil.rmtree(work / old, ignore_errors=True)  # every output is made anew: resumed runs would skip work
    video = data / "videos" / "synth_val_0000.mp4"
    decodes = {"greedy": [], "beam": ["--strategy", "beam", "--num-beams", "3"]}
    for name, flags in decodes.items():
        _run("caption", str(video), "--model", str(model), "-o", str(work / f"caption-{name}"), "--no-progress",
             *flags, *prec, *dbatch, cwd=work)  # fmt: skip
        _run("evaluate", str(model), str(data), "--level", "all", "--metrics", "cider,rouge_l,bleu",
             "-o", str(work / f"evaluate-{name}"), "--no-progress", *flags, *prec, cwd=work)  # fmt: skip
    outputs = [f"caption-{n}" for n in decodes] + [f"evaluate-{n}" for n in decodes]
    if with_train:
        import yaml

        recipe = work / "recipe.yaml"
        recipe.write_text(yaml.safe_dump({**TRAIN_RECIPE, "output_dir": str(work / "train")}))
        _run("train", str(recipe), "--data-root", str(data), "--max-steps", "2", "--device", "cpu", "--no-progress",
             cwd=work)  # fmt: skip
        outputs.append("train")
    sums = {}
    for out in outputs:
        for f in sorted((work / out).rglob("*")):
            if f.is_file() and not f.name.endswith(".log") and f.name not in SKIPPED:
                # cache folders are named by a settings hash that includes absolute paths
                name = re.sub(r"-[0-9a-f]{12}(?=/)", "-<hash>", str(f.relative_to(work)))
                sums[name] = _digest(f, work)
    return sums


def compare(a: Path, b: Path) -> int:
    x, y = json.loads(a.read_text()), json.loads(b.read_text())
    bad = 0
    for k in sorted(set(x) | set(y)):
        if x.get(k) != y.get(k):
            bad += 1
            print(f"DIFFERS  {k}: {x.get(k, 'missing')[:12]} vs {y.get(k, 'missing')[:12]}")
    print(f"{len(set(x) | set(y)) - bad} identical, {bad} different")
    return 1 if bad else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, help="scratch folder (reused: the dataset and features are made once)")
    p.add_argument("-o", "--output", type=Path, help="JSON file of {output file: sha256}")
    p.add_argument("--no-train", action="store_true", help="skip the 2-step training run")
    p.add_argument("--precision", help="pass --precision to features, caption and evaluate (use a fresh --work: "
                   "the features are made once per work folder)")  # fmt: skip
    p.add_argument("--decode-batch", type=int, help="pass --decode-batch to caption")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="compare two JSON files and exit")
    a = p.parse_args()
    if a.compare:
        return compare(*a.compare)
    if not a.work or not a.output:
        p.error("--work and -o are required (or --compare A B)")
    sums = fingerprint(a.work.resolve(), not a.no_train, a.precision, a.decode_batch)
    a.output.write_text(json.dumps(sums, indent=1, sort_keys=True) + "\n")
    print(f"{len(sums)} files fingerprinted into {a.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
