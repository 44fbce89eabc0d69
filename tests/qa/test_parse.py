"""Lenient answer reading: tables of the shapes LLM replies take, over many choice sets, and what must stay None."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from videorecap.qa.parse import label, parse_answer

# choice sets whose texts look like replies: narration sentences starting with "C", a single capital, numbers
CHOICE_SETS = [
    ("the red cup", "the blue cup", "the green cup", "the cup", "the yellow cup"),
    (
        "C made tea, then washed the dishes, then fed the cat",
        "C made tea, then fed the cat, then washed the dishes",
        "C washed the dishes, then made tea, then fed the cat",
        "C washed the dishes, then fed the cat, then made tea",
        "C fed the cat, then made tea, then washed the dishes",
    ),
    ("once", "twice", "three times", "four times", "five times"),
    ("A person cooks.", "C cleans.", "B vitamins are eaten", "Nothing happens", "E is for eggs"),
]

# (template, how the index goes in): {L} a letter label, {l} a small letter, {n} the 0-based option number,
# {t} the choice's text
SHAPES = [
    "{L}",
    "{L}.",
    "({L})",
    "[{L}]",
    "**{L}**",
    "{L}) {t}",
    "{L}. {t}",
    "({l})",
    "Answer: {L}",
    "answer: ({L})",
    "ANSWER: {L}.",
    "The answer is {L}.",
    "The answer is {L} because the captions say so.",
    "The correct answer is: ({L}) {t}",
    "Answer - {L}",
    "Option {n}",
    "option {n}",
    "The answer is option {n}.",
    "I would choose option {L}.",
    "Option {n}: {t}",
    '{{"answer": "{L}"}}',
    '{{"answer": {n}}}',
    '{{"Answer": "option {n}"}}',
    '```json\n{{"answer": "{L}", "reason": "the summary"}}\n```',
    'Here you go: {{"prediction": "{t}"}}',
    "{t}",
    "{t}.",
    "  {t}  \n",
    "Answer: {t}",
    "Based on the captions, so I pick ({L}).",
]


@pytest.mark.parametrize("choices", CHOICE_SETS, ids=["objects", "order", "count", "tricky"])
@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_names_every_choice(choices, shape):
    for i, text in enumerate(choices):
        reply = shape.format(L=label(i), l=label(i).lower(), n=i, t=text)
        assert parse_answer(reply, choices) == i, (reply, choices)


def test_the_choice_text_inside_a_sentence_names_it():
    objects = CHOICE_SETS[0]
    assert parse_answer("I think C used the blue cup here.", objects) == 1
    assert parse_answer("It is the cup.", objects) == 3  # "the cup" alone: not inside "the red cup"
    assert parse_answer("C used the yellow cup, clearly", objects) == 4
    order = CHOICE_SETS[1]
    assert parse_answer(f"Looking at the timeline, {order[2]}.", order) == 2


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   ",
        None,
        "I don't know.",
        "A cup is used.",  # the article, not option A
        "C puts the kettle on the stove",  # the narration's C, not option C
        "B or C",  # two answers
        "Either option 1 or option 2",
        "the red cup and the blue cup",  # two choices' texts
        "Option 7",  # no such option
        "F",
        '{"answer": 9}',
        '{"answer": true}',
        "Summarize: C makes tea in the kitchen.",  # a summariser's reply to a question prompt
        "{not json",
    ],
)
def test_replies_that_pick_nothing_or_several_are_none(reply):
    assert parse_answer(reply, CHOICE_SETS[0]) is None


def test_numbers_are_option_numbers_from_0_as_in_egoschema():
    choices = CHOICE_SETS[0]
    assert parse_answer("Option 0", choices) == 0 and parse_answer("option 4", choices) == 4
    assert parse_answer('{"answer": 0}', choices) == 0
    assert parse_answer("Option 5", choices) is None


def test_no_choices_or_fewer_letters():
    assert parse_answer("C", ()) is None
    assert parse_answer("C", ("yes", "no")) is None  # only A and B exist
    assert parse_answer("b", ("yes", "no")) is None  # a bare small letter is not a label
    assert parse_answer("(b)", ("yes", "no")) == 1


_word = st.text(alphabet=string.ascii_lowercase, min_size=3, max_size=8)
_choice = st.lists(_word, min_size=1, max_size=5).map(lambda ws: "the " + " ".join(ws))


@settings(max_examples=150, deadline=None)
@given(
    choices=st.lists(_choice, min_size=2, max_size=6, unique=True).filter(
        lambda cs: not any(a != b and f" {a} " in f" {b} " for a in cs for b in cs)  # none inside another
    ),
    pick=st.integers(min_value=0, max_value=5),
    shape=st.sampled_from(SHAPES),
)
def test_random_choice_sets_parse_back(choices, pick, shape):
    i = pick % len(choices)
    reply = shape.format(L=label(i), l=label(i).lower(), n=i, t=choices[i])
    assert parse_answer(reply, choices) == i, reply


@settings(max_examples=200, deadline=None)
@given(reply=st.text(max_size=80))
def test_any_text_gives_an_index_or_none_and_never_raises(reply):
    got = parse_answer(reply, CHOICE_SETS[1])
    assert got is None or 0 <= got < 5
