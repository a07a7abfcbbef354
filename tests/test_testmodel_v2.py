"""The v2 conformance world (issue 16): what the checkpoint is taught and the suites it serves.

Requirements on the teacher and the suites, independent of any trained weights: near-ties taught at equal
frequency at free-text positions only, reasoning several-fold longer at high effort, eleven tools whose taught
arguments are valid under their schemas, structured answers valid under theirs, budgets sized for the real
models, a quick profile.
"""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter

import jsonschema
import pytest
from conftest import load_script

from verifier import harmony
from verifier.suites import load_suite
from verifier.testmodel.v2 import data, oracle
from verifier.testmodel.v2.text import Text
from verifier.testmodel.v2.tools import TOOLS


@pytest.fixture(scope="module")
def suites(tmp_path_factory):
    root = tmp_path_factory.mktemp("suites-v2")
    load_script("make_suites").write(root)
    return {path.name: load_suite(path) for path in sorted(root.iterdir())}


def _turns(case) -> list[tuple[dict, oracle.Reply]]:
    """Every request of a case's tool loop with the taught reply."""
    rng, request, out = random.Random(0), case.request, []
    while request is not None:
        reply = oracle.respond(request)
        out.append((request, reply))
        request = data.continue_loop(rng, request, case.tool_results) if reply.call_name in case.tool_results else None
    return out


def test_text_matches_exactly_its_realisations():
    text = Text.of("A ", ("cat", "dog"), " sat.")
    assert text.matches("A cat sat.") and text.matches("A dog sat.")
    assert not text.matches("A cow sat.") and not text.matches("A cat sat. ")
    assert {text.render(random.Random(seed)) for seed in range(20)} == {"A cat sat.", "A dog sat."}
    assert text.render() == "A cat sat." and text.choices == 1


def test_alternatives_are_taught_equally_often_and_only_in_free_text():
    request = {"messages": [{"role": "user", "content": "What's the weather in Rome?"}], "reasoning_effort": "high",
               "tools": [data.tools.tool("get_weather")]}
    reply = oracle.respond(request)
    rng = random.Random(1)
    firsts = Counter(reply.analysis.render(rng).split(". ")[1] for _ in range(4000))
    assert set(firsts) == {"I should answer clearly", "I should reply clearly"}
    assert all(0.45 < n / 4000 < 0.55 for n in firsts.values()), firsts
    # the call (channel, recipient, constrain, arguments, stop) has one taught form
    tail = reply.harmony().render().split("<|end|>", 1)[1]
    assert all(reply.harmony().render(random.Random(s)).split("<|end|>", 1)[1] == tail for s in range(50))


def test_reasoning_is_several_fold_longer_at_high_effort_and_varies_by_task():
    rng = random.Random(2)
    tokens: dict[str, list[int]] = {"low": [], "medium": [], "high": []}
    for _ in range(1500):
        request = data.sample_request(rng)
        effort = request.get("reasoning_effort") or "medium"
        tokens[effort].append(len(harmony.encode(oracle.respond(request).analysis.render(rng))))
    medians = {effort: statistics.median(v) for effort, v in tokens.items()}
    assert medians["high"] >= 4 * medians["low"] and medians["low"] < medians["medium"] < medians["high"], medians
    assert len(set(tokens["high"])) > 5  # spread: lengths differ between tasks


def test_v2_suites_have_the_breadth_of_real_traffic(suites):
    assert set(suites) == {"harmony", "tools", "structured", "effort", "drift"}
    cases = [c for s in suites.values() for c in s.cases]
    declared = {t["function"]["name"] for c in cases for t in c.request.get("tools") or []}
    called = {r.call_name for c in cases for _, r in _turns(c) if r.call_name}
    assert declared == set(TOOLS) and len(called) >= 10
    assert len(suites["structured"].cases) >= 3
    assert all(c.max_tokens >= 4096 for c in cases if c.effort == "high")
    assert max(len(_turns(c)) for c in suites["tools"].cases) == 3  # two tool rounds, then the answer
    window = 128
    assert any(len(harmony.render_chat(c.request)) > window + 64 and "tools" not in c.request for c in cases)
    for name, suite in suites.items():
        assert 0 < len(suite.for_profile("quick").cases) < len(suite.cases), name


def test_every_suite_turn_is_answerable_and_valid_under_its_schemas(suites):
    for suite in suites.values():
        for case in suite.cases:
            for request, reply in _turns(case):
                if reply.call_name:
                    schema = next(t["function"]["parameters"] for t in request["tools"]
                                  if t["function"]["name"] == reply.call_name)
                    jsonschema.validate(json.loads(reply.call_arguments), schema)
                elif (fmt := harmony.json_schema_format(request)) is not None:
                    jsonschema.validate(json.loads(reply.final.render()), fmt["schema"])
                    assert not reply.analysis.render().startswith("{")  # the reasoning is not constrained


def test_training_examples_render_and_include_the_suite_requests(suites, tmp_path):
    for name, suite in suites.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "cases.jsonl").write_text("\n".join(json.dumps(c.model_dump()) for c in suite.cases))
    examples = data.build_dataset(300, seed=0, suites_dir=tmp_path, suite_share=0.5)
    assert len(examples) == 300
    assert all(0 < e.loss_from < len(e.tokens) for e in examples)
    assert max(e.loss_from for e in examples) > 600  # eleven tool declarations


def test_evaluation_walks_every_loop_step_and_classes_positions(suites, tmp_path):
    from verifier.testmodel.v2 import evaluate

    for name, suite in suites.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "suite.yaml").write_text(f"name: {name}\nversion: 2\nfamilies: {suite.families}\n")
        (folder / "cases.jsonl").write_text("\n".join(json.dumps(c.model_dump()) for c in suite.cases))
    found = evaluate.turns(tmp_path)
    assert len(found) == sum(len(_turns(c)) for s in suites.values() for c in s.cases)
    assert any(t.label.endswith("#2") for t in found)  # a second tool round
    reply = oracle.respond(found[0].request)
    tokens = harmony.encode_with_specials(reply.harmony_text())
    classes = evaluate._classes(tokens)
    text_of = {cls: harmony.decode([t for t, c in zip(tokens, classes, strict=True) if c == cls])
               for cls in set(classes)}
    assert text_of["free"].startswith(reply.analysis.render()) and "<|" not in text_of["free"]
    assert "<|channel|>" in text_of["structural"]
