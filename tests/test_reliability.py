"""Reliability on real servers: a chaos proxy in front of the built-in provider, outages, kill -9 and
resume, and the API key kept out of every artifact. Figures are printed (`pytest -s`) for the notes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from verifier import journal
from verifier.exchange import DEFAULT_API_VARIANTS
from verifier.harness.chaos import DISRUPTIONS, ChaosProxy
from verifier.providers import RetryPolicy
from verifier.runner import BUILTIN_MODEL, RunConfig, execute

FAST_RETRY = RetryPolicy(attempts=6, base_s=0.05, cap_s=0.5, max_retry_after_s=1.0)
KILL_TRIALS = 20
APIS = [*DEFAULT_API_VARIANTS, "score", "prompt-ids"]
"""Every default API variant and drift's scoring, on the quick profile's cases: what retries, resumes and
journals must survive depends on the kinds of exchange (streams, loops, scoring), not on how many cases."""
QUICK = ["--profile", "quick", *(arg for api in APIS for arg in ("--api", api))]


def _comparable(result) -> dict:
    """What must not depend on how a run got its answers: every check's verdict, summary and outcomes."""
    return {c.id: (c.verdict.value, c.summary, [(o.verdict.value, o.case_id, o.variant, o.turn, o.message)
                                                 for o in c.outcomes]) for c in result.checks}


def _run(url: str, out: Path, **config):
    result, run_dir = execute(RunConfig(base_url=url, model=BUILTIN_MODEL, out=out, profile="quick", apis=APIS,
                                        **config))
    return result, run_dir


@pytest.fixture(scope="module")
def clean(server, tmp_path_factory):
    """An uninterrupted run of every suite (quick profile, every API) straight to the provider (it also warms
    its cache)."""
    result, _ = _run(server.url, tmp_path_factory.mktemp("clean"))
    assert result.verdict == "pass"
    return result


def test_chaos_gives_the_clean_verdicts(server, clean, tmp_path):
    with ChaosProxy(server.url, rate=0.25, seed=7, retry_after="1") as proxy:
        result, _ = _run(proxy.url, tmp_path, retry=FAST_RETRY)
        injected = Counter(e.disruption for e in proxy.log if e.disruption)
    print(f"\nchaos: {len(proxy.log)} requests, injected {dict(injected)}")
    assert set(injected) == set(DISRUPTIONS), "every kind of disruption must have been met"
    assert _comparable(result) == _comparable(clean)
    assert result.cost == clean.cost


def test_an_outage_is_an_error_never_a_fail_and_resume_finishes(server, clean, tmp_path):
    policy = RetryPolicy(attempts=2, base_s=0.01, cap_s=0.02, breaker=3, cooldown_s=600)
    with ChaosProxy(server.url) as proxy:
        proxy.outage_after = 60
        result, run_dir = _run(proxy.url, tmp_path, retry=policy)
        before = {e.request_id for e in proxy.forwarded()}
        assert result.verdict == "error"
        assert not [c.id for c in result.checks if c.verdict.value == "fail"]
        proxy.outage_after = None
        proxy.outage = False
        journaled = {ex.key for ex in journal.read(run_dir / journal.FILE) if not ex.failed("unavailable")}
        mark = len(proxy.log)
        resumed, _ = execute(RunConfig(retry=policy), resume=run_dir)
        again = [e.request_id for e in proxy.log[mark:] if e.forwarded]
    print(f"\noutage: {len(before)} requests answered before it, {len(again)} sent on resume")
    assert not set(again) & journaled, "a journaled exchange was sent again"
    assert _comparable(resumed) == _comparable(clean)


def _journal_keys(path: Path) -> set[str]:
    if not path.exists():
        return set()
    lines = path.read_bytes().split(b"\n")[:-1]
    return {json.loads(line)["key"] for line in lines if line.strip()}


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "verifier.cli", "run", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CI": "1"})


def _kill_when(proc: subprocess.Popen, out: Path, lines: int, deadline_s: float = 120) -> bool:
    """SIGKILL once the run's journal has `lines` lines (0: once its run directory exists).
    Returns False if the run finished first."""
    end = time.monotonic() + deadline_s
    while proc.poll() is None and time.monotonic() < end:
        journals = list(out.glob("*/journal.jsonl")) if lines else list(out.glob("*/run.json"))
        if journals and (lines == 0 or journals[0].read_bytes().count(b"\n") >= lines):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    proc.wait()
    return False


def test_kill_9_at_random_points_then_resume(server, clean, tmp_path):
    rng = random.Random(20261125)
    with ChaosProxy(server.url, latency_s=0.01) as proxy:
        reference_out = tmp_path / "reference"
        assert _start(["--base-url", proxy.url, "--model", BUILTIN_MODEL, *QUICK, "--out", str(reference_out)]).wait() == 0
        total = _journal_keys(next(reference_out.glob("*/journal.jsonl")))
        reference = json.loads(next(reference_out.glob("*/result.json")).read_text())
        figures = Counter()
        for trial in range(KILL_TRIALS):
            out = tmp_path / f"trial{trial}"
            kills = 2 if trial % 5 == 4 else 1  # every fifth trial is killed again while resuming
            trial_mark = len(proxy.log)
            proc = _start(["--base-url", proxy.url, "--model", BUILTIN_MODEL, *QUICK, "--out", str(out)])
            killed_at = rng.randrange(0, len(total))
            assert _kill_when(proc, out, killed_at), "the run ended before the kill"
            run_dir = next(out.iterdir())
            before_kill = {e.request_id for e in proxy.log[trial_mark:] if e.forwarded}
            for attempt in range(kills):
                done = _journal_keys(run_dir / "journal.jsonl")
                mark = len(proxy.log)
                proc = _start(["--resume", str(run_dir)])
                last = attempt == kills - 1
                if not last:
                    assert _kill_when(proc, out, min(len(done) + rng.randrange(1, 40), len(total) - 1))
                    continue
                assert proc.wait() == 0, proc.stderr.read()
                sent = {e.request_id for e in proxy.log[mark:] if e.forwarded and e.request_id}
                figures["duplicates"] += len(sent & done)
                figures["in flight at a kill, sent again"] += len(sent & (before_kill - done))
                figures["replayed"] += len(done)
                figures["sent on resume"] += len(sent)
            result = json.loads((run_dir / "result.json").read_text())
            assert result["checks"] == reference["checks"]
            assert result["cost"] == reference["cost"]
            figures["trials"] += 1
            figures["kills"] += kills
    print(f"\nkill -9: {dict(figures)} over runs of {len(total)} exchanges")
    assert figures["trials"] == KILL_TRIALS and figures["duplicates"] == 0


SECRET = "sk-verify-" + "".join(random.Random().choices("abcdefghijklmnopqrstuvwxyz0123456789", k=32))


def _artifacts_free_of(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_the_api_key_is_never_written(server, tmp_path):
    with ChaosProxy(server.url, api_key=SECRET, echo_key=True) as proxy:
        proc = run_cli("run", "--base-url", proxy.url, "--model", BUILTIN_MODEL, "--suite", "tools", "--api",
                       "chat", "--api", "chat-stream", "--api", "responses", "--out", str(tmp_path / "env"),
                       "--api-key-env", "VERIFY_TEST_KEY", env={"VERIFY_TEST_KEY": SECRET})
        assert proc.returncode in (0, 1), proc.stderr  # the echoed key changes answers: fails are fine here
        flag = run_cli("run", "--base-url", proxy.url, "--model", BUILTIN_MODEL, "--suite", "harmony", "--api",
                       "chat", "--out", str(tmp_path / "flag"), "--api-key", SECRET)
        wrong = run_cli("run", "--base-url", proxy.url, "--model", BUILTIN_MODEL, "--suite", "harmony",
                        "--out", str(tmp_path / "wrong"), "--api-key", SECRET[::-1])
        from_env = run_cli("run", "--model", BUILTIN_MODEL, "--suite", "harmony", "--api", "chat", "--out",
                           str(tmp_path / "openai-env"), env={"OPENAI_BASE_URL": proxy.url, "OPENAI_API_KEY": SECRET})
        flags_win = run_cli("run", "--base-url", proxy.url, "--model", BUILTIN_MODEL, "--suite", "harmony", "--api",
                            "chat", "--out", str(tmp_path / "flags-win"), "--api-key-env", "VERIFY_TEST_KEY",
                            env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": SECRET[::-1],
                                 "VERIFY_TEST_KEY": SECRET})
    assert proxy.forwarded(), "the key was accepted"
    assert flag.returncode in (0, 1), flag.stderr
    assert wrong.returncode == 2 and "401" in wrong.stderr
    assert from_env.returncode in (0, 1), from_env.stderr  # OPENAI_BASE_URL and OPENAI_API_KEY reached the proxy
    assert flags_win.returncode in (0, 1), flags_win.stderr  # neither the dead env URL nor the wrong env key was used
    assert list((tmp_path / "openai-env").glob("*/result.json")) and list((tmp_path / "flags-win").glob("*/result.json"))
    journal = next((tmp_path / "env").glob("*/journal.jsonl")).read_text()
    assert "[REDACTED]" in journal, "the provider echoed the key, so something had to be scrubbed"
    for proc_, key in ((proc, SECRET), (flag, SECRET), (wrong, SECRET[::-1]), (from_env, SECRET), (flags_win, SECRET),
                       (flags_win, SECRET[::-1])):
        assert key not in proc_.stdout + proc_.stderr
    assert not _artifacts_free_of(tmp_path, SECRET) and not _artifacts_free_of(tmp_path, SECRET[::-1])


def _in_a_terminal(args: list[str], env: dict) -> str:
    """Run the CLI with a pseudo-terminal as stdout and stderr; what the terminal showed."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "verifier.cli", *args], cwd=REPO, stdout=follower,
                            stderr=follower, env=env, close_fds=True)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    proc.wait()
    os.close(leader)
    return shown.decode("utf-8", "replace")


def test_a_progress_bar_on_a_terminal_and_none_in_ci(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    args = ["run", "--suite", "harmony", "--api", "chat", "--out", str(tmp_path)]
    assert "━" in _in_a_terminal(args, env)
    assert "━" not in _in_a_terminal(args, {**env, "CI": "true"})
    quiet = run_cli(*args)  # not a terminal
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_a_torn_journal_line_is_dropped_and_appends_start_clean(tmp_path):
    from verifier.exchange import Exchange
    from verifier.observation import Failure

    path = tmp_path / "journal.jsonl"
    first = Exchange(suite="s", case_id="c", variant="chat", turn=1, request={}, chat_request={}, key="k1")
    log = journal.Journal(path)
    log.write(first)
    log.close()
    with open(path, "a") as fh:
        fh.write('{"suite": "s", "case_id": "c2", "vari')  # a kill mid-write
    assert [ex.key for ex in journal.read(path)] == ["k1"]
    log = journal.Journal(path)
    log.write(first.model_copy(update={"key": "k2"}))
    log.close()
    assert [ex.key for ex in journal.read(path)] == ["k1", "k2"]
    outage = Failure(kind="unavailable", message="HTTP 503")
    replay = journal.Replay(journal.read(path) + [first.model_copy(update={"key": "k3", "failure": outage})])
    assert replay.take("k1") is not None and replay.take("k1") is None and replay.take("k3") is None
