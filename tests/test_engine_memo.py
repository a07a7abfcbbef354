"""The reference engine's memo on disk (`MEMO_ENV`): engines of one configuration in any process share greedy
generations and scores; another checkpoint, dtype or numeric fault never sees them; logprob-noise, sampling and
an engine handed a model loaded elsewhere never use it."""

from __future__ import annotations

import shutil

import pytest

from verifier import harmony
from verifier.reference import engine as engine_module
from verifier.reference.engine import MEMO_ENV, Engine

PROMPT = harmony.render_chat({"messages": [{"role": "user", "content": "Name a colour."}]}, "2026-01-01")


@pytest.fixture
def memo(tmp_path, monkeypatch):
    folder = tmp_path / "memo"
    monkeypatch.setenv(MEMO_ENV, str(folder))
    return folder


def _never_computes(engine: Engine) -> Engine:
    """`engine`, which fails the test if it decodes or scores instead of recalling."""
    def refuse(*args, **kwargs):
        raise AssertionError("computed, not recalled")

    engine._generate = refuse
    engine._score = refuse
    return engine


def test_a_second_engine_of_the_same_configuration_recalls_what_the_first_computed(checkpoint, memo):
    first = Engine(checkpoint, "fp32")
    generated = first.generate(PROMPT, 6, harmony.ASSISTANT_STOPS, k=3)
    scored = first.score(PROMPT + generated.tokens, 5, k=3)
    assert len(list(memo.glob("*.pickle"))) == 2

    second = _never_computes(Engine(checkpoint, "fp32"))
    assert second.generate(PROMPT, 6, harmony.ASSISTANT_STOPS, k=3) == generated
    assert second.score(PROMPT + generated.tokens, 5, k=3) == scored
    with pytest.raises(AssertionError, match="computed"):  # another budget is another key
        second.generate(PROMPT, 5, harmony.ASSISTANT_STOPS, k=3)


@pytest.mark.parametrize("other", [{"dtype": "bf16"}, {"numeric_faults": frozenset({"fp8-activations"})}])
def test_another_dtype_or_numeric_fault_computes_its_own(checkpoint, memo, other):
    Engine(checkpoint, "fp32").generate(PROMPT, 4, harmony.ASSISTANT_STOPS)
    with pytest.raises(AssertionError, match="computed"):
        _never_computes(Engine(checkpoint, other.get("dtype", "fp32"), numeric_faults=other.get(
            "numeric_faults", frozenset()))).generate(PROMPT, 4, harmony.ASSISTANT_STOPS)


def test_another_checkpoint_computes_its_own(checkpoint, memo, tmp_path):
    Engine(checkpoint, "fp32").generate(PROMPT, 4, harmony.ASSISTANT_STOPS)
    changed = tmp_path / "changed"
    shutil.copytree(checkpoint, changed)
    config = changed / "config.json"
    config.write_text(config.read_text().replace("{", '{"memo_test": 1, ', 1))
    with pytest.raises(AssertionError, match="computed"):
        _never_computes(Engine(changed, "fp32")).generate(PROMPT, 4, harmony.ASSISTANT_STOPS)


def test_noise_sampling_and_models_loaded_elsewhere_stay_off_disk(checkpoint, memo, engine):
    Engine(checkpoint, "fp32", numeric_faults=frozenset({"logprob-noise"})).generate(PROMPT, 3, harmony.ASSISTANT_STOPS)
    Engine(checkpoint, "fp32").generate(PROMPT, 3, harmony.ASSISTANT_STOPS, temperature=1.0, seed=1)
    Engine(checkpoint, "fp32", model=engine.model).generate(PROMPT, 3, harmony.ASSISTANT_STOPS)
    assert not memo.exists() or not list(memo.iterdir())


def test_a_torn_or_unreadable_entry_is_computed_again(checkpoint, memo):
    generated = Engine(checkpoint, "fp32").generate(PROMPT, 4, harmony.ASSISTANT_STOPS)
    (entry,) = memo.glob("*.pickle")
    entry.write_bytes(entry.read_bytes()[:10])
    again = Engine(checkpoint, "fp32")
    assert again.generate(PROMPT, 4, harmony.ASSISTANT_STOPS) == generated
    assert engine_module.pickle.loads(entry.read_bytes()) == generated  # written again, whole
