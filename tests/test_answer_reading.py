"""Model answers as free text, read as the peers read them (VLMEvalKit's can_infer for options, the first word
for MME's yes/no)."""
from __future__ import annotations

import pytest

from projlab.evaluation.answers import read_option, read_yes_no

CORNERS = {"A": "top-left", "B": "top-right", "C": "bottom-left", "D": "bottom-right"}


@pytest.mark.parametrize("text, key, how", [
    ("A", "A", "letter"),
    ("B.", "B", "letter"),
    ("(C)", "C", "letter"),
    ("Answer: D", "D", "letter"),
    ("The answer is B", "B", "letter"),
    ("The correct answer is **C**.", "C", "letter"),
    ("The answer is B, as the circle sits in the upper corner on the right", "B", "answer_is"),
    ("The answer is C because A is wrong", "C", "answer_is"),
    ("It is bottom-left.", "C", "option_text"),
    ("Top-Right", "B", "option_text"),
    ("b", None, "unreadable"),  # letters are case-sensitive
    ("The answer is blue", None, "unreadable"),
    ("A cat sits on the mat", None, "unreadable"),  # "A" early in a longer answer is the article
    ("B. The circle sits in the upper corner on the right", None, "unreadable"),  # not among the last four words
    ("A or B", None, "unreadable"),
    ("bottom-left or bottom-right", None, "unreadable"),
    ("E", None, "unreadable"),  # not an option of this question
    ("Z", None, "declined"),
])
def test_an_option_is_read_as_can_infer_reads_it(text, key, how):
    assert read_option(text, CORNERS) == (key, how)


@pytest.mark.parametrize("text, key", [
    ("Yes", "A"), ("no", "B"), ("NO", "B"), ("No.", "B"), ("yes, there is", "A"), ('"Yes"', "A"),
    ("Yes, but no cat", "A"), ("A", None), ("B", None), ("nope", None), ("y", None), ("There is no dog.", None),
    ("", None),
])
def test_mme_reads_yes_or_no_as_the_first_word(text, key):
    assert read_yes_no(text, {"A": "Yes", "B": "No"})[0] == key
