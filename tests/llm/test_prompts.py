"""Prompt files: the shipped defaults, a user's file, their fields and hashes."""

from __future__ import annotations

import pytest

from videorecap.errors import InputError
from videorecap.llm.prompts import DEFAULTS, default_prompt, load_prompt


def test_default_prompts_fill_their_fields():
    for name in DEFAULTS:
        default_prompt(name).check()
    assert default_prompt("summarize").messages(text="C cooks.") == [{"role": "user", "content": "Summarize: C cooks."}]
    seg = default_prompt("segment").messages(captions="[0-4 s] C opens the door", seconds=40.0, text="")
    assert [m["role"] for m in seg] == ["system", "user"]
    assert "40-second" in seg[1]["content"] and seg[1]["content"].endswith("[0-4 s] C opens the door")


def test_user_prompt_files(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("[system]\nBe brief.\n[user]\nSay what C does in {seconds:g} s: {text} {{not a field}}\n")
    prompt = load_prompt(p)
    assert prompt.messages(text="C eats", seconds=4.0) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say what C does in 4 s: C eats {not a field}"},
    ]
    assert prompt.hash != default_prompt("summarize").hash and len(prompt.hash) == 12
    p.write_text("Tell me about {activity}")
    with pytest.raises(InputError, match="p.txt: unknown field.*activity"):
        load_prompt(p)
    p.write_text("[system]\nonly a system message\n")
    with pytest.raises(InputError, match="no user message"):
        load_prompt(p)
    with pytest.raises(InputError, match="--prompt .*missing.txt: cannot read"):
        load_prompt(tmp_path / "missing.txt")
    # a prompt that never gives the model the lower level's text would label every row from nothing
    p.write_text("Describe what happens in {seconds:g} s.")
    with pytest.raises(InputError, match=r"p.txt: the prompt must use \{text\} or \{captions\} or \{descriptions\}"):
        load_prompt(p)


def test_asks_prompt_files_are_checked_in_the_same_place(tmp_path):
    from videorecap.qa.answer import load_prompt as load_ask_prompt

    p = tmp_path / "ask.txt"
    p.write_text("[user]\n{context}\nQ: {question}\n{options}")
    assert load_ask_prompt(p).source == str(p)
    p.write_text("[user]\n{context}\nAnswer well.")
    with pytest.raises(InputError, match=r"ask.txt: the prompt must use \{question\}; it uses \{context\}"):
        load_ask_prompt(p)
    p.write_text("[user]\n{context} {question} {text}")  # a pseudo-label field is not an ask field
    with pytest.raises(InputError, match=r"ask.txt: unknown field\(s\) \['text'\]; the fields are context"):
        load_ask_prompt(p)


def test_docs_show_the_shipped_defaults():
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "llm.md").read_text().split("## Prompts", 1)[1]
    for name in DEFAULTS:
        block = doc.split(f"`{name}.txt`", 1)[1].split("```\n", 1)[1].split("```", 1)[0]
        assert block.strip() == default_prompt(name).text.strip(), name
