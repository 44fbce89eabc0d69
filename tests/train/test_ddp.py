"""Two gloo processes under torchrun end with identical parameters and the loss of one process with the same
global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_process_ddp_matches_one_process(hcap_root, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    two = tmp_path / "two"
    two.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER)]
    proc = subprocess.run([*cmd, str(hcap_root), str(two), "1"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = tmp_path / "one"
    one.mkdir()
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(hcap_root), str(one), "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    r0 = torch.load(two / "rank0-of-2.pt", weights_only=True)
    r1 = torch.load(two / "rank1-of-2.pt", weights_only=True)
    ref = torch.load(one / "rank0-of-1.pt", weights_only=True)
    assert all(torch.equal(r0["state"][k], r1["state"][k]) for k in r0["state"]), "ranks diverged"
    assert r0["losses"] == r1["losses"]  # the logged loss is the all-reduced global mean
    torch.testing.assert_close(torch.tensor(r0["losses"]), torch.tensor(ref["losses"]), rtol=1e-5, atol=1e-6)
    for k in ref["state"]:
        torch.testing.assert_close(r0["state"][k], ref["state"][k], rtol=1e-4, atol=1e-6)
    # only rank 0 wrote the checkpoints
    assert (two / "run" / "final" / "model.safetensors").is_file()
