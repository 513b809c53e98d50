"""Statements, splits and contrast templates (interp/contrast.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oversight.errors import DataError, SpecError
from oversight.interp.contrast import (
    CAPITALS,
    ContrastTemplate,
    Statement,
    generate_facts,
    load_any,
    load_statements,
    parse_answers,
    split_by_group,
    subsample,
)


def test_generated_facts_are_balanced_seeded_and_true() -> None:
    facts = generate_facts(200, seed=3)
    assert len(facts) == 200 and sum(facts.labels) == 100
    assert generate_facts(200, seed=3).statements == facts.statements
    assert generate_facts(200, seed=4).statements != facts.statements
    groups: dict[str, list[Statement]] = {}
    for s in facts.statements:
        groups.setdefault(s.group, []).append(s)
    assert all(sorted(x.label for x in g) == [0, 1] for g in groups.values())
    kinds = {s.group.split(":")[0] for s in facts.statements}
    assert kinds == {"capitals", "sums", "numbers", "animals"}
    for s in facts.statements:  # the facts are what they claim to be
        if s.group.startswith("sums:"):
            left, right = s.text.rstrip(".").split(" = ")
            a, b = (int(v) for v in left.split(" + "))
            assert (a + b == int(right)) == bool(s.label)
        if s.group.startswith("numbers:"):
            first, _, word, _, second = s.text.rstrip(".").split(" ")
            bigger = int(first) > int(second)
            assert (bigger if word == "larger" else not bigger) == bool(s.label)
        if s.group.startswith("capitals:"):
            country = s.group.split(":", 1)[1]
            assert s.text.endswith(f" {CAPITALS[country]}.") == bool(s.label)


def test_generate_facts_rejects_bad_requests() -> None:
    with pytest.raises(SpecError, match="even"):
        generate_facts(7)
    with pytest.raises(SpecError, match="unknown fact kind"):
        generate_facts(10, kinds=["planets"])
    with pytest.raises(SpecError, match="hold only"):
        generate_facts(10_000, kinds=["capitals"])


def test_split_keeps_each_group_on_one_side() -> None:
    facts = generate_facts(300, seed=0)
    split = split_by_group(facts.statements, test_fraction=0.3, validation_fraction=0.25, seed=1)
    parts = [split.fit, split.validation, split.test]
    assert sorted(i for p in parts for i in p) == list(range(300))
    group_sets = [{facts.statements[i].group for i in p} for p in parts]
    assert not (group_sets[0] & group_sets[1]) and not (group_sets[0] & group_sets[2]) and not (group_sets[1] & group_sets[2])
    assert 0.2 < len(split.test) / 300 < 0.4
    assert split.train == sorted(split.fit + split.validation)
    assert split_by_group(facts.statements, seed=1) == split_by_group(facts.statements, seed=1)


def test_split_needs_both_labels() -> None:
    only_true = [Statement(f"s{i}", 1, f"g{i}") for i in range(10)]
    with pytest.raises(DataError, match="only label"):
        split_by_group(only_true)


def test_template_prompt_continuation_and_pair() -> None:
    t = ContrastTemplate("{text}\nQuestion: Is this true? Answer: {answer}", ("Yes", "No"))
    assert t.prompt("2 + 2 = 4.") == "2 + 2 = 4.\nQuestion: Is this true? Answer:"
    assert t.continuation("Yes") == " Yes"
    pos, neg = t.pair("2 + 2 = 4.")
    assert pos == t.prompt("2 + 2 = 4.") + t.continuation("Yes") and neg.endswith("Answer: No")
    braces = ContrastTemplate("Claim: {text} ({answer}).", ("true", "false"))
    assert braces.pair("a {b} c") == ("Claim: a {b} c (true).", "Claim: a {b} c (false).")
    assert braces.continuation("true") == "true)."
    plain = ContrastTemplate("{text}")
    assert plain.prompt("x") == "x" and not plain.has_answer
    with pytest.raises(SpecError, match="contrast pairs need"):
        plain.pair("x")


@pytest.mark.parametrize(
    ("fmt", "answers", "message"),
    [("no text {answer}", ("Yes", "No"), "must contain"), ("{text} {other}", ("Yes", "No"), "only use"),
     ("{text} {answer} {answer}", ("Yes", "No"), "once"), ("{text} {answer}", ("Yes", "Yes"), "two different")],
)
def test_template_errors(fmt: str, answers: tuple[str, str], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        ContrastTemplate(fmt, answers)


def test_parse_answers() -> None:
    assert parse_answers("True, False") == ("True", "False")
    with pytest.raises(SpecError, match="two comma-separated"):
        parse_answers("Yes")


def test_statement_files_jsonl_and_csv(tmp_path: Path) -> None:
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text('{"text": "Ice is cold.", "label": 1}\n\n{"text": "Fire is cold.", "label": "false", "group": "temp"}\n')
    data = load_statements(jsonl)
    assert data.labels == [1, 0] and data.statements[1].group == "temp" and data.statements[0].source == "s.jsonl:1"
    csv = tmp_path / "s.csv"
    csv.write_text('text,label\n"Water, at sea level, boils at 100 C.",1\nThe sun is cold.,0\n')
    assert load_any(csv).labels == [1, 0]


def test_statement_file_errors_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok", "label": 1}\n{"text": "hm", "label": 2}\n')
    with pytest.raises(DataError) as err:
        load_statements(bad)
    assert (err.value.line, err.value.field) == (2, "label") and "bad.jsonl:2" in str(err.value)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"label": 1}\n')
    with pytest.raises(DataError, match="missing required field") as err2:
        load_statements(missing)
    assert err2.value.field == "text"
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "a", "label": 1}\n{not json\n')
    with pytest.raises(DataError, match="not valid JSON") as err3:
        load_statements(broken)
    assert err3.value.line == 2
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"prompt": "x"}) + "\n")
    with pytest.raises(DataError, match="cannot tell"):
        load_any(other)
    with pytest.raises(DataError, match="no such file"):
        load_any(tmp_path / "nope.csv")


def test_truthfulqa_and_persona_loaders(shared_data: Path) -> None:
    tqa = load_any(shared_data / "truthfulqa" / "TruthfulQA.csv")
    assert len(tqa) == 2 * 817 and sum(tqa.labels) == 817
    first_true, first_false = tqa.statements[:2]
    assert first_true.text.startswith("Q: ") and "\nA: " in first_true.text and first_true.group == first_false.group
    persona = load_any(shared_data / "anthropic_model_written_evals" / "persona" / "no-shut-down.jsonl")
    assert len(persona) == 1000 and 0 < sum(persona.labels) < 1000
    small = subsample(tqa, 100, seed=0)
    assert len(small) == 100 and sum(small.labels) == 50
