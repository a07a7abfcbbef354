"""`--api` selects what a run sends: every name is known, every name asked for is sent, and the drift
evidence kinds select the drift method (no name is accepted and then silently ignored)."""

from __future__ import annotations

from typing import get_args

import pytest

from verifier.config import RunConfig
from verifier.errors import UsageError
from verifier.exchange import API_VARIANTS, DEFAULT_API_VARIANTS, EVIDENCE_KINDS, ApiVariantName, Exchange
from verifier.journal import Journal
from verifier.observation import Observation
from verifier.runner import Runner, _tasks, _validate, api_variants, drift_method, unsent
from verifier.suites import load_suite


class Recorder:
    """A provider that records what it is asked to send and answers with an empty observation."""

    def __init__(self):
        self.sent: list[tuple[str, bool]] = []

    def chat(self, body: dict, stream: bool = False) -> Observation:
        self.sent.append(("chat", stream))
        return Observation(api="chat", stream=stream, status=200)

    def responses(self, body: dict, stream: bool = False) -> Observation:
        self.sent.append(("responses", stream))
        return Observation(api="responses", stream=stream, status=200)

    def completions_harmony(self, prompt: list[int], max_tokens: int, stream: bool = False) -> Observation:
        assert all(isinstance(t, int) for t in prompt) and max_tokens > 0
        self.sent.append(("completions", stream))
        return Observation(api="completions", stream=stream, status=200)


@pytest.fixture(scope="module")
def harmony():
    return load_suite("harmony")


@pytest.mark.parametrize("variant", list(API_VARIANTS))
def test_every_api_variant_is_sent_as_itself(variant, harmony, tmp_path):
    """Each API variant reaches the provider on its own API, streamed exactly when its name says so."""
    log = Journal(tmp_path / "journal.jsonl")
    runner = Runner(Recorder(), log)
    case = next(c for c, v in _tasks(harmony, [variant]))
    exchanges = runner.run_loop(harmony, case, variant, "2026-01-01")
    log.close()
    spec = API_VARIANTS[variant]
    assert runner.provider.sent == [(spec.api, spec.stream)]
    assert [ex.variant for ex in exchanges] == [variant]
    if spec.api == "completions":  # the journal holds the body sent, a plain JSON object
        assert set(exchanges[0].request) == {"prompt", "max_tokens"}
        assert Exchange.model_validate_json(exchanges[0].model_dump_json()) == exchanges[0]


def test_completions_stream_is_sent_when_asked_and_not_by_default(harmony):
    assert "completions-stream" in api_variants(harmony, ["completions-stream"])
    assert "completions-stream" in {v for _, v in _tasks(harmony, ["chat", "completions-stream"])}
    assert api_variants(harmony, None) == list(DEFAULT_API_VARIANTS)
    assert "completions-stream" not in DEFAULT_API_VARIANTS


def test_effort_runs_on_the_apis_that_carry_effort_only():
    effort = load_suite("effort")
    assert api_variants(effort, None) == ["chat", "responses"]
    assert api_variants(effort, ["chat-stream", "responses"]) == ["responses"]
    assert unsent([effort], ["chat-stream"]) == ["chat-stream"]


@pytest.mark.parametrize(("apis", "forced", "method"), [
    (None, "auto", "auto"),
    (None, "greedy", "greedy"),
    (["chat"], "auto", None),
    (["score"], "auto", "teacher"),
    (["greedy-logprobs"], "auto", "greedy"),
    (["sampling", "chat"], "auto", "sampling"),
    (["sampling"], "sampling", "sampling"),
    (["score", "greedy-logprobs", "sampling"], "auto", "auto"),
    (["score", "greedy-logprobs", "sampling"], "teacher", "teacher"),
])
def test_drift_evidence_kinds_select_the_drift_method(apis, forced, method):
    assert drift_method(apis, forced) == method


@pytest.mark.parametrize(("apis", "forced", "needle"), [
    (["greedy-logprobs", "sampling"], "auto", "name one of"),
    (["score", "sampling"], "teacher", "name one of"),
    (["sampling"], "teacher", "--drift-method teacher sends `score` requests"),
    (["chat"], "greedy", "--drift-method greedy sends `greedy-logprobs` requests"),
])
def test_contradictory_drift_selection_is_refused(apis, forced, needle):
    with pytest.raises(UsageError, match=needle):
        drift_method(apis, forced)


def test_every_drift_evidence_kind_is_sent_by_a_drift_suite():
    drift = load_suite("drift")
    for kind in ("score", "greedy-logprobs", "sampling"):
        assert unsent([drift], [kind]) == []
    assert unsent([drift], ["prompt-ids", "chat"]) == ["prompt-ids", "chat"]


def test_every_name_of_both_lists_is_accepted_and_nothing_else():
    for name in [*API_VARIANTS, *EVIDENCE_KINDS]:
        _validate(RunConfig(apis=[name]))
    with pytest.raises(UsageError, match="unknown API variants"):
        _validate(RunConfig(apis=["carrier-pigeon"]))


def test_the_api_variant_table_names_each_api_variant_once():
    assert tuple(API_VARIANTS) == get_args(ApiVariantName)
    assert all(API_VARIANTS[name].name == name for name in API_VARIANTS)
    assert set(DEFAULT_API_VARIANTS) <= set(API_VARIANTS) and not set(EVIDENCE_KINDS) & set(API_VARIANTS)
