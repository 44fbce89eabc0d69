"""What the converters share: the report of what happened to every tensor, and the strict comparison of the
converted tensors against the target model (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from videorecap.errors import CheckpointError

MODULE_PREFIX = "module."  # added by DistributedDataParallel; every released file carries it


@dataclass
class ConversionReport:
    """What happened to every tensor of the source.

    Attributes:
        source_format: "videorecap-official" or "lavila".
        used: source keys (as stored in the file) that became one of our tensors, with our key.
        dropped: source keys left out by design, with the reason.
        notes: how the config was inferred where that was a choice (level rule, args read, defaults taken).
    """

    source_format: str
    used: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def dropped_by_reason(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, reason in self.dropped.items():
            out.setdefault(reason, []).append(key)
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "source_format": self.source_format,
            "used": len(self.used),
            "dropped": len(self.dropped),
            "dropped_by_reason": {r: len(ks) for r, ks in self.dropped_by_reason().items()},
            "notes": list(self.notes),
        }


def strip_module_prefix(state_dict: Mapping[str, object], source: str) -> dict[str, str]:
    """Map each key without its leading `module.` to the key as stored. Non-tensor values are an error."""
    names: dict[str, str] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source}: state_dict entry {key!r} is not a tensor ({type(value).__name__})")
        short = key.removeprefix(MODULE_PREFIX)
        if short in names:
            raise CheckpointError(f"{source}: keys {names[short]!r} and {key!r} are the same tensor name twice")
        names[short] = key
    return names


def _names(keys: list[str], limit: int = 5) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(repr(k) for k in keys[:limit]) + more


def raise_unknown(unknown: list[str], source: str, what: str) -> None:
    """An error naming source keys that no rule consumes (`what` says what kind of checkpoint was expected)."""
    if unknown:
        raise CheckpointError(
            f"{source}: {len(unknown)} key(s) that a {what} checkpoint does not have, so nothing would load them: "
            f"{_names(sorted(unknown))}"
        )


def check_against_model(
    build: Callable[[], nn.Module],
    converted: Mapping[str, torch.Tensor],
    origin: Mapping[str, str],
    source: str,
    what: str,
    unknown: list[str] | None = None,
) -> None:
    """Compare converted tensors with the state dict of the module `build()` makes (built on the meta device).

    Args:
        build: makes the target module from the inferred config.
        converted: our key -> tensor.
        origin: our key -> the source key it came from (for error messages).
        source: the file name, for error messages.
        what: the kind of checkpoint expected, for error messages.
        unknown: source keys that no naming rule knows, reported together with those that have no place here.

    Raises:
        CheckpointError: a source tensor with no place in the model (named), a model tensor that no source tensor
            fills (named), or a shape that differs from what the inferred sizes need (named, both shapes).
    """
    with torch.device("meta"):
        expected = build().state_dict()
    raise_unknown([*(unknown or []), *(origin[k] for k in converted if k not in expected)], source, what)
    missing = [k for k in expected if k not in converted]
    if missing:
        raise CheckpointError(
            f"{source}: incomplete {what} checkpoint: nothing fills {len(missing)} tensor(s) of the model it "
            f"describes: {_names(missing)}"
        )
    for k, t in expected.items():
        got = converted[k]
        if tuple(got.shape) != tuple(t.shape):
            raise CheckpointError(
                f"{source}: key {origin[k]!r} has shape {list(got.shape)}, but the sizes read from the rest of the "
                f"checkpoint need {list(t.shape)} (for {k})"
            )
