"""torchrun helpers: who am I, which share of the work is mine.

`torchrun --nproc_per_node=N` sets `RANK`, `WORLD_SIZE` and `LOCAL_RANK` in each process. Without them we are a
single process (rank 0 of 1). Sharding is a pure function of the item list, so every process computes the same
split with no communication: item `i` belongs to rank `i % world`, which keeps long and short videos mixed.
torch is imported where a device or a process group is needed, so that what only shards or checks ranks (the output
lock, `--help`) stays light.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def rank_world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) outside torchrun."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, world


def local_rank() -> int:
    """This process's index on its machine (`LOCAL_RANK`), used to pick its GPU."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """True in the process that should print summaries and write shared files (rank 0)."""
    return rank_world()[0] == 0


def shard(items: Sequence[T], rank: int | None = None, world: int | None = None) -> list[T]:
    """This rank's share of `items`: every `world`-th item starting at `rank`.

    Deterministic, disjoint across ranks, and together covering every item exactly once, as long as all ranks
    pass the same list in the same order (sort it first).
    """
    if rank is None or world is None:
        r, w = rank_world()
        rank = r if rank is None else rank
        world = w if world is None else world
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of {world}")
    return list(items[rank::world])


def default_device() -> str:
    """ "cuda:LOCAL_RANK" when a GPU is visible, else "cpu"."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{local_rank() % torch.cuda.device_count()}"
    return "cpu"


def init_if_needed(backend: str | None = None) -> bool:
    """Start the default process group under torchrun (gloo on CPU, nccl on GPU); a no-op otherwise.

    Returns:
        True when a process group is (now) initialised.
    """
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        return False
    if dist.is_initialized():
        return True
    _, world = rank_world()
    if world == 1 or "MASTER_ADDR" not in os.environ:
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank() % torch.cuda.device_count())
    dist.init_process_group(backend=backend)
    logger.info("process group initialised: backend=%s rank=%d world=%d", backend, *rank_world())
    return True


def barrier() -> None:
    """Wait for every rank, when a process group is running."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
