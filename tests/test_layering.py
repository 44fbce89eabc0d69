"""The package's import graph has no circle and every import points down the declared layers (CONTRIBUTING.md).

Every module under src/videorecap is parsed with `ast`; its imports of videorecap modules (at module level and
inside functions alike, since a function-level import is still a dependency; not those under
`if TYPE_CHECKING:`, which never run) are the graph's edges. An import by name at run time (`importlib`, e.g. the
bundled presets that config.py registers on first use) is deliberately not an edge.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

import videorecap

# Lowest first. A module may import its own layer and the layers before it, never a later one. A module belongs
# to the longest entry that names it or a package above it ("videorecap" itself, the package's __init__, holds
# only __version__ and lazy names, so it is matched exactly, not as a prefix).
LAYERS: list[tuple[str, ...]] = [
    (
        "videorecap",
        "videorecap.errors",
        "videorecap.fileio",
        "videorecap.distributed",
        "videorecap.runtime",
        "videorecap.lock",
        "videorecap.httpserve",  # the one local HTTP server (stdlib only)
    ),
    ("videorecap.compiled",),  # the video encoder compiled ahead of time and cached on disk (--compile)
    ("videorecap.store",),  # the one resumable store (fingerprint, chunked append, atomic writes)
    ("videorecap.levelio",),  # what each level reads and writes (feature counts, windows, lengths); no imports
    ("videorecap.config",),  # typed configs and presets; bundled presets are named, not imported
    ("videorecap.tokenizer",),
    ("videorecap.model",),  # the network only: no decoding, no files
    ("videorecap.text",),  # text-only models over caption text: the sentence-embedding model
    ("videorecap.convert.sniff",),  # recognising released files by their bytes: checkpoint's error messages use it
    ("videorecap.checkpoint",),  # checkpoint folders <-> models
    ("videorecap.convert",),  # released weights -> our state dicts
    ("videorecap.video",),  # probing, decoding and sampling frames
    ("videorecap.data",),  # Ego4D-HCap files, datasets, batches (decodes clips with video/)
    ("videorecap.video.features",),  # the feature-extraction job: reads the segment files of data/
    ("videorecap.results",),  # typed caption results: what the hierarchy engine emits
    ("videorecap.infer",),  # the hierarchy engine, the decoding loops and the one caption_batch
    ("videorecap.llm",),  # language-model backends (an OpenAI-compatible server, the own text model), prompts
    ("videorecap.export",),
    ("videorecap.metrics",),
    ("videorecap.pipeline",),  # captioning a video file at every level
    ("videorecap.raydata",),  # features and caption as a Ray Data pipeline (`--ray`; Ray itself is optional)
    ("videorecap.evaluate",),
    ("videorecap.train",),
    ("videorecap.live",),  # live captioning: a stream through pipeline's clip step and the engine
    ("videorecap.synth",),  # the synthetic world and its bundled model
    ("videorecap.qa",),  # questions over the hierarchy: contexts, answer parsing, answerers, the EgoSchema runner
    ("videorecap.search",),  # moment search over a folder of captions, and its web app
    ("videorecap.commands",),
    ("videorecap.cli", "videorecap.__main__"),
]

ROOT = Path(videorecap.__file__).resolve().parent


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package at `root`."""
    out = {}
    for p in sorted(root.rglob("*.py")):
        parts = [root.name, *p.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` bodies (the else branch runs, so it stays)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for stmt in node.body:
                skip.update(id(n) for n in ast.walk(stmt))
    return skip


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (module- and function-level, TYPE_CHECKING excluded)."""
    mods = modules(root)
    top = root.name

    def resolve(name: str) -> str | None:
        # `from videorecap.data import hcap` names a module; `from videorecap.data.hcap import ClipRow` a symbol
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        skip = _type_checking_nodes(tree)
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            names: Iterable[str] = ()
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: up from this module's package
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                names = [f"{source}.{a.name}" for a in node.names]
            for name in names:
                if name == top or name.startswith(top + "."):
                    target = resolve(name)
                    if target is not None and target != mod:
                        targets.add(target)
        graph[mod] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str, layers: list[tuple[str, ...]] = LAYERS) -> int | None:
    best, best_len = None, -1
    for i, names in enumerate(layers):
        for name in names:
            exact_only = "." not in name  # the root package
            if module == name or (not exact_only and module.startswith(name + ".")):
                if len(name) > best_len:
                    best, best_len = i, len(name)
    return best


def back_edges(graph: dict[str, set[str]], layers: list[tuple[str, ...]] = LAYERS) -> list[str]:
    """Imports of a later layer, as "a (layer) -> b (layer)" lines."""

    def name(i: int | None) -> str:
        return "/".join(layers[i]) if i is not None else "?"

    bad = []
    for a in sorted(graph):
        la = layer_of(a, layers)
        for b in sorted(graph[a]):
            lb = layer_of(b, layers)
            if la is not None and lb is not None and lb > la:
                bad.append(f"{a} ({name(la)}) imports {b} ({name(lb)})")
    return bad


# ---- the package ----------------------------------------------------------------------------------------------------
def test_every_module_has_a_layer():
    missing = [m for m in modules(ROOT) if layer_of(m) is None]
    assert not missing, f"add these modules to LAYERS here and in CONTRIBUTING.md: {missing}"


def test_no_import_cycles():
    found = cycles(import_graph(ROOT))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_imports_point_down_the_layers():
    bad = back_edges(import_graph(ROOT))
    assert not bad, "imports against the layer order (CONTRIBUTING.md):\n" + "\n".join(bad)


def test_model_knows_nothing_of_decoding_checkpoints_or_presets_elsewhere():
    graph = import_graph(ROOT)
    below_infer = [m for m in graph if m.startswith(("videorecap.model", "videorecap.config"))]
    for m in below_infer:
        assert not {t for t in graph[m] if t.startswith(("videorecap.infer", "videorecap.checkpoint"))}, m
    assert not [t for t in graph["videorecap.config"] if t.startswith("videorecap.synth")]


# ---- the checker itself ----------------------------------------------------------------------------------------------
@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A package `toy` with a circle through a function-level import, and one hidden behind TYPE_CHECKING."""
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toy.high import H\nelse:\n    import json\n"
    )
    (pkg / "high.py").write_text("from toy import low\nfrom .sub.mid import f\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "mid.py").write_text("def f():\n    from ..high import g\n    return g\n")
    return pkg


def test_checker_sees_function_level_and_relative_imports_and_skips_type_checking(toy):
    g = import_graph(toy)
    assert g["toy.low"] == set()  # only under TYPE_CHECKING
    assert g["toy.high"] == {"toy.low", "toy.sub.mid"}
    assert g["toy.sub.mid"] == {"toy.high"}  # inside a function, relative
    assert cycles(g) == [["toy.high", "toy.sub.mid"]]
    layers = [("toy", "toy.low"), ("toy.sub",), ("toy.high",)]
    assert layer_of("toy.sub.mid", layers) == 1 and layer_of("toy.other", layers) is None
    assert back_edges(g, layers) == ["toy.sub.mid (toy.sub) imports toy.high (toy.high)"]
