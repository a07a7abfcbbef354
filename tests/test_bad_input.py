"""Bad input gets one line and exit 2, no traceback, and leaves earlier results exactly as they were."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import one_line_exit_2, run_cli

from verifier.paths import golden_dir, suites_dir

GOLDEN = golden_dir() / "gpt-oss-conformance" / "fp32"


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> Path:
    """A reports directory holding a finished run, which no bad invocation may touch."""
    out = tmp_path_factory.mktemp("reports")
    proc = run_cli("run", "--suite", "harmony", "--api", "chat", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def _suite_copy(tmp_path: Path, name: str = "harmony") -> Path:
    target = tmp_path / "suites" / name
    shutil.copytree(suites_dir() / name, target)
    return target


def _golden_copy(tmp_path: Path, edit=None, suite: str = "harmony") -> Path:
    target = tmp_path / "golden"
    target.mkdir(exist_ok=True)
    data = json.loads((GOLDEN / f"{suite}.json").read_text())
    if edit:
        edit(data)
    (target / f"{suite}.json").write_text(json.dumps(data))
    return target


def _malformed_yaml(tmp_path):
    suite = _suite_copy(tmp_path)
    (suite / "suite.yaml").write_text("name: harmony\nversion: [unclosed\n")
    return ["--suite", str(suite)], "cannot read suite metadata"


def _malformed_case(tmp_path):
    suite = _suite_copy(tmp_path)
    with open(suite / "cases.jsonl", "a") as fh:
        fh.write('{"id": "broken", "request": \n')
    return ["--suite", str(suite)], "not valid JSON"


def _case_without_messages(tmp_path):
    suite = _suite_copy(tmp_path)
    with open(suite / "cases.jsonl", "a") as fh:
        fh.write(json.dumps({"id": "empty", "request": {"messages": []}}) + "\n")
    return ["--suite", str(suite)], "request.messages must be a non-empty list"


def _stale_golden(tmp_path):
    suite = _suite_copy(tmp_path)
    lines = (suite / "cases.jsonl").read_text().splitlines()
    case = json.loads(lines[0])
    case["request"]["messages"][-1]["content"] += " (edited)"
    (suite / "cases.jsonl").write_text("\n".join([json.dumps(case), *lines[1:]]) + "\n")
    return ["--suite", str(suite), "--golden", str(_golden_copy(tmp_path))], "golden is stale"


def _golden_for_another_model(tmp_path):
    def other(data):
        data["provenance"].update(checkpoint="gpt-oss-20b", checkpoint_sha256="0" * 64)

    return ["--suite", "harmony", "--golden", str(_golden_copy(tmp_path, other))], "not the conformance checkpoint"


def _golden_of_two_checkpoints(tmp_path):
    def other(data):
        data["provenance"].update(checkpoint="gpt-oss-120b", checkpoint_sha256="1" * 64)

    root = _golden_copy(tmp_path, other, "harmony")
    _golden_copy(tmp_path, None, "tools")
    return ["--suite", "harmony", "--suite", "tools", "--golden", str(root)], "different checkpoints"


def _golden_edited_by_hand(tmp_path):
    def edit(data):
        data["records"][0]["turns"][0]["completion_token_ids"][0] += 1

    return ["--suite", "harmony", "--golden", str(_golden_copy(tmp_path, edit))], "content hash mismatch"


def _golden_for_another_suite(tmp_path):
    root = _golden_copy(tmp_path)
    (root / "harmony.json").rename(root / "tools.json")
    return ["--suite", "tools", "--golden", str(root)], "golden is for suite 'harmony'"


def _golden_of_a_future_format(tmp_path):
    def future(data):
        data["format_version"] = 99

    return ["--suite", "harmony", "--golden", str(_golden_copy(tmp_path, future))], "golden format 99"


def _unknown_suite(tmp_path):
    return ["--suite", "no-such-suite"], "unknown suite 'no-such-suite'"


def _resume_nothing(tmp_path):
    return ["--resume", str(tmp_path / "nowhere")], "is not a run directory"


def _resume_with_other_settings(tmp_path):
    return ["--resume", str(tmp_path), "--model", "m"], "--resume takes the run's own settings"


def _resume_a_corrupt_journal(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"run_id": "x", "created": "2026-11-25T00:00:00+00:00",
                                                  "verifier_version": "0", "config": {"suites": ["harmony"]}}))
    (run_dir / "journal.jsonl").write_text('{"not": "an exchange"}\n')
    return ["--resume", str(run_dir)], "the journal is corrupt"


def _api_no_suite_sends(tmp_path):
    return ["--suite", "effort", "--api", "chat-stream"], "--api chat-stream: no suite of this run sends it"


def _api_two_drift_kinds(tmp_path):
    return ["--suite", "drift", "--api", "greedy-logprobs", "--api", "sampling"], "name one of"


def _api_against_drift_method(tmp_path):
    return ["--suite", "drift", "--api", "sampling", "--drift-method", "teacher"], "--drift-method teacher sends"


@pytest.mark.parametrize("make", [
    _malformed_yaml, _malformed_case, _case_without_messages, _stale_golden, _golden_for_another_model,
    _golden_of_two_checkpoints, _golden_edited_by_hand, _golden_for_another_suite, _golden_of_a_future_format,
    _unknown_suite, _resume_nothing, _resume_with_other_settings, _resume_a_corrupt_journal,
    _api_no_suite_sends, _api_two_drift_kinds, _api_against_drift_method,
], ids=lambda f: f.__name__.strip("_"))
def test_bad_input_is_refused_and_earlier_results_stay(make, earlier, tmp_path):
    before = _snapshot(earlier)
    args, needle = make(tmp_path)
    out = args[1] if args[0] == "--resume" else str(earlier)
    proc = run_cli("run", *args, *(["--out", out] if args[0] != "--resume" else []))
    assert needle in one_line_exit_2(proc)
    assert _snapshot(earlier) == before
