"""Reading a prediction: an option key as the model side gives it, or free text read as the peers read it.

Two ways predictions reach a scorer (`answers=`):
- "keys": the model side's choice, an option key of the record ("A"; case ignored; MME also takes "Yes"/"No").
  Anything else is a bug upstream, so it raises `UserError`.
- "text": a model's answer as written, read by the benchmark's rule; what the rule cannot read counts as
  wrong and is reported (count and examples), never a refused file.

The text rules (read from the peers' code):
- `OPTION`: VLMEvalKit's `can_infer` (MMBench, SEED-Bench). With the punctuation `.()[],:;!*#{}` read as
  spaces, exactly one of the record's option letters standing alone as a word, among the last four words
  ("A.", "(B)", "I think C"); letters are case-sensitive, so "a" is the article. A lone "Z" (no option
  letter) is a declined answer. Failing that, "answer is X" with X an option letter. Failing that, the one
  option whose text occurs in the answer (case ignored), if the answer is at most twice as long as all the
  option texts together. (VLMEvalKit's own "answer is" pattern ignores case, so it reads "The answer is
  blue" as B; here letters stay case-sensitive throughout.)
- `YES_NO`: MME's calculation.py, lmms-eval and VLMEvalKit agree on this core: the first word, any case,
  is "yes" or "no", punctuation after it ignored and a quote or bracket before it ("No.", "yes, there is",
  '"Yes"'). "A"/"B" are not Yes/No. Where the peers differ, this rule decides: "nope", "y" and "There is no dog"
  are not read, "Yes, but no cat" is Yes.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from projlab.errors import UserError
from projlab.evaluation.records import BenchRecord, normalise_predictions, one_line

ANSWER_MODES = ("keys", "text")
N_EXAMPLES = 5  # unreadable predictions quoted in the scores
EXAMPLE_CHARS = 200

_PUNCTUATION = re.compile(r"[.()\[\],:;!*#{}]")
_ANSWER_IS = re.compile(r"(?i:answer\s+is)\s+\**([A-Z])\**(?![A-Za-z])")
_FIRST_WORD = re.compile(r"\s*[\"'(\[]?([A-Za-z]+)\b")

# a reader: (answer text, the record's options) -> (option key or None, how it was read or why not)
Reader = Callable[[str, Mapping[str, str]], tuple[str | None, str]]


def read_option(text: str, options: Mapping[str, str]) -> tuple[str | None, str]:
    """The option an answer names (rule `OPTION` in the module docstring), with how it was read."""
    words = _PUNCTUATION.sub(" ", text).split()
    named = [key for key in options if key in words]
    if len(named) == 1 and words.index(named[0]) >= len(words) - 4:
        return named[0], "letter"
    if not named and "Z" in words and "Z" not in options:
        return None, "declined"
    match = _ANSWER_IS.search(text)
    if match and match.group(1) in options:
        return match.group(1), "answer_is"
    lower = text.lower()
    if len(lower) <= 2 * sum(len(v) for v in options.values()):
        hits = [key for key, value in options.items() if value.lower() in lower]
        if len(hits) == 1:
            return hits[0], "option_text"
    return None, "unreadable"


def read_yes_no(text: str, options: Mapping[str, str]) -> tuple[str | None, str]:
    """The option whose text ("Yes"/"No") is the answer's first word, any case (rule `YES_NO`)."""
    match = _FIRST_WORD.match(text)
    word = match.group(1).lower() if match else ""
    key = next((k for k, v in options.items() if v.lower() == word), None) if word in ("yes", "no") else None
    return (key, "first_word") if key is not None else (None, "unreadable")


@dataclass(frozen=True)
class Rule:
    name: str  # recorded in the scores
    read: Reader


OPTION = Rule("can_infer", read_option)
YES_NO = Rule("yes_no_first_word", read_yes_no)


@dataclass
class Reading:
    """What the scorer needs (record id -> option key, for the predictions read) and what it reports."""

    keys: dict[str, str]
    rule: str
    answered: set[str] = field(default_factory=set)  # record ids with a prediction, read or not
    read_as: Counter = field(default_factory=Counter)
    unreadable: list[tuple[str, Any]] = field(default_factory=list)

    def missing(self, ids: Iterable[str]) -> int:
        """How many of `ids` have no prediction at all (an unreadable one is not missing)."""
        return sum(1 for i in ids if i not in self.answered)

    def summary(self) -> dict[str, Any]:
        def shown(value: Any) -> Any:
            return value[:EXAMPLE_CHARS] if isinstance(value, str) else value

        return {
            "rule": self.rule,
            "read_as": dict(sorted(self.read_as.items())),
            "n_unreadable": len(self.unreadable),
            "unreadable_examples": [{"id": i, "prediction": shown(p)} for i, p in self.unreadable[:N_EXAMPLES]],
        }


def read_answers(
    benchmark: str,
    records: Mapping[str, BenchRecord],
    predictions: Mapping[Any, Any],
    answers: str,
    rule: Rule,
    aliases: Mapping[str, str] | None = None,
    accept_text: bool = False,
) -> Reading:
    """Read `predictions` (id -> key or text) for `records` (id -> record). `answers` is "keys" or "text"
    (module docstring); `rule` reads text; `aliases` maps other accepted ids to a record id; `accept_text`
    lets the keys mode take an option's text for its key (MME). An unknown id, or two different answers
    for one question, raises `UserError` in both modes."""
    if answers == "keys":
        keys = normalise_predictions(benchmark, records, predictions, aliases, accept_text)
        return Reading(keys, "option_key", set(keys), Counter(key=len(keys)))
    if answers != "text":
        raise UserError(f"answers must be one of {', '.join(ANSWER_MODES)}, not {answers!r}")
    aliases = aliases or {}
    reading = Reading({}, rule.name)
    raw_by_target: dict[str, Any] = {}
    for raw_id, raw in predictions.items():
        qid = str(raw_id).strip()
        target = qid if qid in records else aliases.get(qid)
        if target is None:
            raise UserError(one_line(f"{benchmark}: prediction for unknown question id {qid!r}"))
        if target in raw_by_target:
            if raw_by_target[target] != raw:
                raise UserError(one_line(f"{benchmark}: conflicting predictions for question {target!r}"))
            continue
        raw_by_target[target] = raw
        key, how = rule.read(raw, records[target].options) if isinstance(raw, str) else (None, "not_text")
        if key is None:
            reading.unreadable.append((qid, raw))
        else:
            reading.keys[target] = key
        reading.read_as[how] += 1
    reading.answered = set(raw_by_target)
    return reading
