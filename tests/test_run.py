"""End to end through the CLI: the honest built-in provider passes, every fault fails its target checks,
and bad input gets one line and exit code 2."""

from __future__ import annotations

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from conftest import one_line_exit_2, run_cli

from verifier.checks import ordered
from verifier.config import DEFAULT_SUITES
from verifier.serve.faults import FAULTS, QUIRKS, Fault
from verifier.suites import load_suite


def _result(stdout: str) -> tuple[dict, Path]:
    report = Path(next(line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith("report: ")))
    return json.loads((report.parent / "result.json").read_text()), report.parent


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    out = tmp_path_factory.mktemp("honest")
    proc = run_cli("run", "--out", str(out))
    return proc, *_result(proc.stdout)


def test_honest_builtin_provider_passes_every_check(honest):
    proc, result, run_dir = honest
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result["verdict"] == "pass"
    families = {c["family"] for c in result["checks"]}
    assert families == {"rendering", "parsing", "tools", "structured", "effort", "drift"}
    fallbacks = {"drift.greedy_logprobs", "drift.sampling"}  # not needed: the provider offers teacher forcing
    assert {c["id"]: c["verdict"] for c in result["checks"] if c["id"] in fallbacks} == dict.fromkeys(fallbacks, "skip")
    assert all(c["verdict"] == "pass" for c in result["checks"] if c["id"] not in fallbacks), \
        [c["id"] for c in result["checks"] if c["verdict"] != "pass"]
    assert set(result["apis"]) >= {"chat", "chat-stream", "responses", "responses-stream", "completions", "score",
                                    "prompt-ids"}
    assert result["provider"]["prompt_ids_mode"] == "return_token_ids"
    assert result["provider"]["score_mode"] == "prompt_logprobs"
    # the demo's provider computes in bf16, not golden's own fp32 engine: real drift, inside the boundary
    assert _drift_medians(result) and min(_drift_medians(result)) > 1e-4


def _drift_medians(result: dict) -> list[float]:
    return [o["observed"]["median_relative"] for c in result["checks"] if c["id"] == "drift.teacher_forced"
            for o in c["outcomes"] if isinstance(o.get("observed"), dict)]


@pytest.mark.slow
def test_fp32_quirk_serves_goldens_own_engine(tmp_path):
    """`--quirk fp32`: the engine golden came from, so teacher forcing reproduces golden up to the 1e-6 rounding of
    golden's stored log-probabilities (bf16, the default, is orders of magnitude further: see the honest run)."""
    proc = run_cli("run", "--out", str(tmp_path), "--suite", "drift", "--api", "score", "--quirk", "fp32")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result, _ = _result(proc.stdout)
    (median,) = _drift_medians(result)
    assert median < 1e-6


def test_run_writes_journal_report_and_junit(honest):
    _, result, run_dir = honest
    journal = (run_dir / "journal.jsonl").read_text().splitlines()
    assert len(journal) == result["cost"]["requests"] > 100
    html = (run_dir / "report.html").read_text()
    assert "<script" not in html and 'class="banner pass"' in html
    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert int(suite.get("tests")) == len(result["checks"]) and suite.get("failures") == "0"


def test_report_rerenders_from_result_json(honest, tmp_path):
    _, _, run_dir = honest
    proc = run_cli("report", str(run_dir / "result.json"), "--out", str(tmp_path))
    assert proc.returncode == 0
    assert (tmp_path / "report.html").read_text() == (run_dir / "report.html").read_text()


def test_fault_table_names_registered_checks():
    """faults.yaml: every fault has a target, no check is both target and collateral, every id is a check."""
    known = {spec.id for spec in ordered()}
    for fault in FAULTS.values():
        assert fault.targets, fault.name
        assert not set(fault.targets) & set(fault.may_also_fail), fault.name
        assert set(fault.targets) | set(fault.may_also_fail) <= known, (fault.name, sorted(
            set(fault.targets) | set(fault.may_also_fail) - known))


def targeted(fault: Fault) -> list[str]:
    """The fault's run options, limited to the default suites its target checks run in (every suite of their
    families) and to the quick profile's cases, unless its options name suites or a profile (faults.yaml)."""
    args = list(fault.run_args) if "--profile" in fault.run_args else ["--profile", "quick", *fault.run_args]
    if "--suite" in fault.run_args:
        return args
    families = {spec.family for spec in ordered() if spec.id in fault.targets}
    suites = [name for name in DEFAULT_SUITES if families & set(load_suite(name).families)]
    return [*args, *(arg for name in suites for arg in ("--suite", name))]


def test_a_targeted_fault_runs_the_suites_of_its_targets_and_no_others():
    quick = ["--profile", "quick"]
    assert targeted(FAULTS["int4-experts"]) == [*quick, "--suite", "drift"]  # drift.teacher_forced: drift only
    assert targeted(FAULTS["no-call-stop"]) == [*quick, "--suite", "tools"]
    # rendering.prompt_ids runs in harmony, tools and structured, effort.honoured in effort
    assert targeted(FAULTS["effort-clamped"]) == [*quick, "--suite", "harmony", "--suite", "tools", "--suite",
                                                  "structured", "--suite", "effort"]
    assert targeted(FAULTS["sliding-window-off"]) == [*quick, "--score-all", "--suite", "drift"]
    named = FAULTS["no-call-stop"].model_copy(update={"run_args": ["--suite", "harmony"]})
    assert targeted(named) == [*quick, "--suite", "harmony"]
    full = FAULTS["no-call-stop"].model_copy(update={"run_args": ["--profile", "full"]})
    assert targeted(full) == ["--profile", "full", "--suite", "tools"]
    assert all("--suite" in targeted(fault) for fault in FAULTS.values())


def test_only_drift_faults_go_undetected():
    """A fault the shipped checkpoint cannot show under the suites says why (with its measurement) and is a
    drift fault: every behavioural fault stays in the matrix."""
    undetected = {f.name for f in FAULTS.values() if f.undetected}
    assert all(FAULTS[name].mode == 11 for name in undetected), undetected
    assert undetected <= {"no-sinks"}, undetected  # leaving another fault out of the matrix is a decision made here


ELSEWHERE_END_TO_END = {"int4-experts", "rope-theta"}
"""Drift faults also failed end to end in CI by other tests (int4 experts served by vLLM, tests/test_vllm.py; a wrong
RoPE base behind string-only completions and the greedy fallbacks, tests/test_drift_run.py): their matrix runs are
`exhaustive` (`make test-all`)."""


@pytest.mark.slow
@pytest.mark.parametrize("fault", [pytest.param(name, marks=pytest.mark.exhaustive) if name in ELSEWHERE_END_TO_END
                                   else name for name, f in sorted(FAULTS.items()) if not f.undetected])
def test_each_fault_fails_its_target_checks(fault, tmp_path):
    """The fault matrix: every fault mode fails each of its target checks, fails nothing outside its
    targets and may-also-fail collateral (faults.yaml), and nothing errors. Each fault runs the suites
    its targets live in (`targeted`), not all of them."""
    expected = FAULTS[fault]
    proc = run_cli("run", "--out", str(tmp_path), "--fault", fault, *targeted(expected))
    assert proc.returncode == 1 and "report: " in proc.stdout, proc.stdout + proc.stderr  # failed, not crashed
    result, _ = _result(proc.stdout)
    failed = {c["id"] for c in result["checks"] if c["verdict"] == "fail"}
    if record := os.environ.get("GPT_OSS_VERIFY_FAULT_MATRIX"):  # keep the observed matrix, e.g. to compare runs
        with open(record, "a") as fh:
            fh.write(json.dumps({"fault": fault, "failed": sorted(failed)}) + "\n")
    assert set(expected.targets) <= failed, f"target checks that passed: {sorted(set(expected.targets) - failed)}"
    unexpected = failed - set(expected.targets) - set(expected.may_also_fail)
    assert not unexpected, f"checks that failed outside the fault's targets and collateral: {sorted(unexpected)}"
    assert not [c["id"] for c in result["checks"] if c["verdict"] == "error"]
    for check_id in expected.targets:
        assert f"FAIL  {check_id}" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("variants", [["header-role-recipient", "reasoning-content-only", "responses-summary"],
                                      ["reasoning-only"]])
def test_honest_variants_pass_every_check(tmp_path, variants):
    """Behaviours a conforming server may have (other reasoning fields, the role-section header) pass."""
    args = [a for name in variants for a in ("--variant", name)]
    proc = run_cli("run", "--out", str(tmp_path), "--suite", "harmony", "--suite", "tools", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result, _ = _result(proc.stdout)
    assert result["provider"]["variants"] == sorted(variants)
    fields = {o["observed"][0] for c in result["checks"] if c["id"] == "parsing.reasoning_separated"
              for o in c["outcomes"] if o["observed"]}
    assert fields <= {"reasoning_content", "reasoning", "reasoning_text", "summary_text"}


def test_every_variant_is_exercised():
    covered = {"header-role-recipient", "reasoning-content-only", "responses-summary", "reasoning-only",
               "no-prompt-logprobs", "no-logprobs", "fp32"}  # no-*logprobs in test_drift_run.py
    assert covered == set(QUIRKS)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args,needle", [
    (["run", "--suite", "nope"], "unknown suite 'nope'"),
    (["run", "--base-url", "http://127.0.0.1:{port}/v1"], "--model is required"),
    (["run", "--base-url", "http://127.0.0.1:{port}/v1", "--model", "m"], "ConnectError"),
    (["run", "--fault", "no-such-fault"], "unknown fault"),
    (["serve", "--quirk", "fp32"], "`serve` takes --dtype fp32"),
    (["run", "--api", "carrier-pigeon"], "unknown API variants"),
    (["run", "--api-key-env", "SURELY_UNSET_VARIABLE_X"], "is not set"),
    (["report", "/nonexistent/result.json"], "no result file"),
])
def test_bad_input_gets_one_line_and_exit_2(tmp_path, args, needle):
    port = _closed_port()
    proc = run_cli(*[a.format(port=port) for a in args], "--out", str(tmp_path)) if args[0] == "run" else run_cli(*args)
    assert needle in one_line_exit_2(proc)


def test_corrupt_golden_is_refused(tmp_path):
    bad = tmp_path / "golden"
    bad.mkdir()
    (bad / "harmony.json").write_text("{broken")
    proc = run_cli("run", "--suite", "harmony", "--golden", str(bad), "--out", str(tmp_path))
    assert "not a readable golden file" in one_line_exit_2(proc)


def test_an_endpoint_that_is_not_openai_compatible_is_refused(tmp_path):
    class Html(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>a blog</html>")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = run_cli("run", "--base-url", f"http://127.0.0.1:{server.server_port}/v1", "--model", "m",
                       "--out", str(tmp_path))
    finally:
        server.shutdown()
    assert "did not answer with JSON" in one_line_exit_2(proc)


def test_listings():
    for command, needle in (("faults", "tool-call-in-content"), ("checks", "tools.finish_reason"), ("suites", "harmony")):
        proc = run_cli(command)
        assert proc.returncode == 0 and needle in proc.stdout
