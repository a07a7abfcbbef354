"""Golden files: round trip, integrity, staleness, format versions."""

from __future__ import annotations

import json

import pytest

from verifier import golden as store
from verifier.errors import GoldenError
from verifier.paths import golden_dir
from verifier.suites import load_suite

SHIPPED = golden_dir() / "gpt-oss-conformance" / "fp32" / "harmony.json"


def test_shipped_golden_loads_and_matches_its_suite():
    golden = store.load(SHIPPED)
    store.check_matches(golden, load_suite("harmony"), SHIPPED)
    prov = golden.provenance
    assert prov.top_k >= 20 and prov.backend == "transformers" and prov.dtype == "fp32"
    assert {"torch", "transformers", "openai-harmony", "verifier"} <= set(prov.libraries)
    turn = golden.records[0].turns[0]
    assert len(turn.scores) == len(turn.completion_token_ids)
    assert all(len(s.top_ids) == prov.top_k for s in turn.scores)
    assert all(s.top_ids[0] == s.token for s in turn.scores)  # greedy: golden token is the argmax


def test_round_trip(tmp_path):
    golden = store.load(SHIPPED)
    path = store.save(golden, tmp_path / "g.json")
    assert store.load(path).model_dump() == golden.model_dump()


def test_edited_record_is_refused(tmp_path):
    raw = json.loads(SHIPPED.read_text())
    raw["records"][0]["turns"][0]["completion_token_ids"][0] += 1
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(GoldenError, match="content hash mismatch"):
        store.load(path)


@pytest.mark.parametrize("content,message", [
    ("{not json", "not a readable golden file"),
    ('{"format_version": 99}', "golden format 99 is not supported"),
    ('{"format_version": 1, "records": []}', "malformed golden file at provenance"),
])
def test_corrupt_files_are_refused_with_a_cause(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(GoldenError, match=message):
        store.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(GoldenError, match="no golden file"):
        store.load(tmp_path / "absent.json")


def test_stale_or_foreign_golden_is_refused():
    golden = store.load(SHIPPED)
    with pytest.raises(GoldenError, match="golden is for suite 'harmony', not 'tools'"):
        store.check_matches(golden, load_suite("tools"), SHIPPED)
    suite = load_suite("harmony").model_copy(update={"sha256": "0" * 64})
    with pytest.raises(GoldenError, match="stale"):
        store.check_matches(golden, suite, SHIPPED)


def test_a_golden_capped_below_the_cases_limits_is_refused():
    """`golden build --max-tokens 32`: its turns stop where a run's requests (256 tokens) would not."""
    golden = store.load(SHIPPED)
    suite = load_suite("harmony")
    capped = golden.model_copy(update={"provenance": golden.provenance.model_copy(update={"max_tokens": 32})})
    with pytest.raises(GoldenError, match="--max-tokens 32"):
        store.check_matches(capped, suite, SHIPPED)
    roomy = golden.model_copy(update={"provenance": golden.provenance.model_copy(update={"max_tokens": 100_000})})
    store.check_matches(roomy, suite, SHIPPED)  # a cap above every case's limit changes nothing
