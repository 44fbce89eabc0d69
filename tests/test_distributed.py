from __future__ import annotations

import pytest

from videorecap import distributed


def test_single_process_defaults(monkeypatch: pytest.MonkeyPatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert distributed.rank_world() == (0, 1)
    assert distributed.is_main()
    assert distributed.shard([3, 1, 2]) == [3, 1, 2]
    assert distributed.init_if_needed() is False


def test_torchrun_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.rank_world() == (2, 3)
    assert not distributed.is_main()
    assert distributed.local_rank() == 1
    assert distributed.shard(list(range(8))) == [2, 5]
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(ValueError):
        distributed.rank_world()


@pytest.mark.parametrize("n, world", [(0, 2), (1, 4), (7, 3), (100, 8)])
def test_shards_are_disjoint_and_cover(n: int, world: int):
    items = [f"v{i}" for i in range(n)]
    parts = [distributed.shard(items, r, world) for r in range(world)]
    flat = [x for p in parts for x in p]
    assert sorted(flat) == sorted(items) and len(flat) == len(set(flat))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert parts == [distributed.shard(items, r, world) for r in range(world)]  # deterministic
    with pytest.raises(ValueError):
        distributed.shard(items, world, world)
