"""Shared fixtures: a hermetic cache, the materialised conformance checkpoint, a live built-in provider."""

from __future__ import annotations

import atexit
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

try:  # pytest 9: where a node id lives (see pytest_collection_modifyitems); pytest 8 reads `_nodeid` as xdist writes
    from _pytest.nodeid import NodeId
except ImportError:
    NodeId = None

# Hermetic: every derived file (vocabulary, tokenizer.json, checkpoint) is rebuilt for the session,
# as on a clean clone. Subprocesses (CLI tests) inherit it. A cache the session made is removed when it
# ends (about 0.5 GB each: left behind, a few hundred runs filled the disk CI shares).
# The reference engines of the whole session (its workers, the servers and runs they start) share one memo of greedy
# generations and scores on disk (`MEMO_ENV`): a prompt the honest built-in provider answered once is not decoded again.
if "GPT_OSS_VERIFY_CACHE" not in os.environ:
    os.environ["GPT_OSS_VERIFY_CACHE"] = tempfile.mkdtemp(prefix="gpt-oss-verify-cache-")
    os.environ.setdefault("GPT_OSS_VERIFY_ENGINE_MEMO", os.path.join(os.environ["GPT_OSS_VERIFY_CACHE"], "engine-memo"))
    atexit.register(shutil.rmtree, os.environ["GPT_OSS_VERIFY_CACHE"], ignore_errors=True)
if os.environ.get("PYTEST_XDIST_WORKER"):  # each pytest-xdist worker derives its own files, inside the session's cache
    os.environ["GPT_OSS_VERIFY_CACHE"] = os.path.join(os.environ["GPT_OSS_VERIFY_CACHE"], os.environ["PYTEST_XDIST_WORKER"])
    # Workers share the cores with each other and with the servers and runs they start: one compute thread each (torch's
    # and the subprocesses'), as oversubscribed OpenMP threads spin against each other. Measured side by side on 2
    # cores, six fault-matrix runs over two workers: 213 s and 240 s with one thread, 261 s and 339 s without.
    if "OMP_NUM_THREADS" not in os.environ:  # a developer's own setting stands
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)
os.environ.pop("TIKTOKEN_ENCODINGS_BASE", None)
# The OpenAI SDK's variables are defaults of --base-url and the key: a developer's own must not redirect runs.
for _name in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
    os.environ.pop(_name, None)

REPO = Path(__file__).resolve().parent.parent
SHARED_GROUPS = {"real_width_repo": "real-width"}
"""Session fixtures too big to build once per worker: the tests that use one share a worker."""
ENGINE_DATE = "2026-12-01"
"""The day vLLM and llama-server are served at (`pinned_clock`), and the day the verifier runs against them
(`run_against`): the findings their tests assert (what each engine wrote on a near-tie of the hesitant checkpoint)
were seen on this date, and another day's prompt may take the other branch (on 2026-12-02 greeting-json's JSON
answer closed before any control token)."""


LIVE_SLOW_S = 120.0
"""In CI, a test phase that took longer than this is named when it ends (`pytest_runtest_logreport`)."""
LIVE_TRACEBACKS = 10
"""In CI, this many failures are printed with their traceback's tail when they happen (one with the same last line as
one printed, such as a module fixture's error, is not); the others in a line."""
_live: dict = {"config": None, "began": time.monotonic(), "seen": set()}


def pytest_configure(config):
    if os.environ.get("CI") and not hasattr(config, "workerinput"):  # the controller (or a run without workers)
        _live["config"] = config


def pytest_runtest_logreport(report):
    """In CI, failures, errors and slow phases are written to the log as they happen, with the seconds since the
    session began: a run killed at CI's time limit never reaches pytest's summary, and still says what failed (with
    the traceback's tail) and where its time went."""
    config = _live["config"]
    terminal = config and config.pluginmanager.get_plugin("terminalreporter")
    if not terminal:
        return
    worker = getattr(getattr(report, "node", None), "gateway", None)  # pytest-xdist: the worker it ran on
    stamp = f"[ci {time.monotonic() - _live['began']:.0f} s, {getattr(worker, 'id', 'main')}]"
    if report.failed:
        lines = report.longreprtext.strip().splitlines() or [""]
        terminal.write_line(f"\n{stamp} {'FAILED' if report.when == 'call' else 'ERROR'} {report.nodeid} ({report.when})")
        if len(_live["seen"]) < LIVE_TRACEBACKS and lines[-1] not in _live["seen"]:
            _live["seen"].add(lines[-1])
            terminal.write_line("\n".join(lines[-30:]))
    elif report.duration > LIVE_SLOW_S:
        terminal.write_line(f"\n{stamp} {report.duration:.0f} s {report.nodeid} ({report.when})")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """`make test` runs two pytest-xdist workers (`--dist loadgroup`). A test that uses a module-scoped fixture
    runs on the worker of its module's other such tests (the fixture is built once), one that uses a fixture of
    SHARED_GROUPS on that group's worker; every other test goes wherever a worker is free (the fault matrix, for
    one, spreads over both)."""
    for item in items:
        if group := _xdist_group(item):
            item.add_marker(pytest.mark.xdist_group(group))
            if NodeId is not None and getattr(config.option, "loadgroup", False) and "@" not in item.nodeid:
                # pytest-xdist 3.8 groups by a `@group` suffix it writes to `item._nodeid`, which pytest 9 no longer
                # reads (`nodeid` comes from `item._id`): write the suffix where pytest 9 reads it
                item._id = NodeId.parse(f"{item.nodeid}@{group}")


def _xdist_group(item) -> str | None:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    if shared := next((SHARED_GROUPS[name] for name in info.names_closure if name in SHARED_GROUPS), None):
        return shared
    module_scoped = any(d.scope == "module" for name in info.names_closure for d in info.name2fixturedefs.get(name, ()))
    return item.module.__name__ if module_scoped else None


REAL_WIDTH_DISK_GB = 10  # the 6 GB repository plus what the tests that read it write beside it


@pytest.fixture(scope="session")
def checkpoint() -> Path:
    from verifier.testmodel.compact import default_checkpoint

    return default_checkpoint()


@pytest.fixture(scope="session")
def engine(checkpoint):
    from verifier.reference.engine import Engine

    return Engine(checkpoint, "fp32")


@pytest.fixture(scope="session")
def server(checkpoint):
    from verifier.serve import start_background

    with start_background(checkpoint, "gpt-oss-conformance") as running:
        yield running


@pytest.fixture(scope="session")
def provider(server):
    from verifier.providers import Provider

    p = Provider(server.url, "gpt-oss-conformance")
    yield p
    p.close()


def run_cli(*args: str, env: dict | None = None, timeout: float = 900):
    """Run the CLI in a subprocess; returns CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "verifier.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO)


def one_line_exit_2(proc) -> str:
    """The single `gpt-oss-verify: error:` line of a refused command (exit 2, no traceback)."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpt-oss-verify: error: "), proc.stderr
    return lines[0]


def load_script(name: str):
    """A module of scripts/ (not a package), loaded from its file: its functions and constants."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN_AGAINST_TIMEOUT_S = 2700.0
"""A limit for a whole run against a real engine on loopback, against hangs only: a clean clone's vLLM module set up
in 960 s with its venv and server, llama.cpp's in 758 s with its 556 s build (2026-12-02, 2 busy cores)."""


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def run_against(server, out: Path, *args: str) -> tuple[int, dict]:
    """`gpt-oss-verify run` against a real engine on loopback: its exit code and result.json (with
    `_run_dir`, the run's directory, added)."""
    from verifier.harness.local import pinned_clock

    # a server at a pinned date is judged by a verifier whose clock says the same day (the rendering checks
    # accept the verifier's own date and its neighbours where a response carries no date of its own)
    env = pinned_clock(server.date) if server.date else None
    command = ("run", "--base-url", server.url, "--model", server.model, "--out", str(out), *args)
    try:
        proc = run_cli(*command, env=env, timeout=RUN_AGAINST_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"gpt-oss-verify run against {server.name} took over {exc.timeout:.0f} s; its output's tail:\n"
                    f"{_text(exc.stdout)[-3000:]}\n{_text(exc.stderr)[-3000:]}\n{server.name}'s log:\n{server.log_tail()}")
    report = next((line.split(": ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("report: ")), None)
    assert report, f"exit {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{server.log_tail()}"
    result = json.loads((Path(report).parent / "result.json").read_text())
    result["_run_dir"] = str(Path(report).parent)
    return proc.returncode, result


def failing(result: dict) -> dict[str, set[tuple]]:
    """check id -> {(case, variant, turn)} of its failing outcomes."""
    out: dict[str, set[tuple]] = {}
    for check in result["checks"]:
        fails = {(o["case_id"], o["variant"], o["turn"]) for o in check["outcomes"] if o["verdict"] == "fail"}
        if fails:
            out[check["id"]] = fails
    return out


def verdicts(result: dict) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in result["checks"]}


def outcomes(result: dict, check: str, verdict: str = "fail") -> list[dict]:
    """The outcomes of one check with one verdict."""
    return [o for c in result["checks"] if c["id"] == check for o in c["outcomes"] if o["verdict"] == verdict]


@functools.lru_cache(maxsize=2)
def _journal(run_dir: str) -> tuple[dict, ...]:
    return tuple(json.loads(line) for line in (Path(run_dir) / "journal.jsonl").read_text().splitlines())


def journal(result: dict) -> tuple[dict, ...]:
    """The journal of a `run_against` run, read once: every exchange (request, chat_request, observation)."""
    return _journal(result["_run_dir"])


def exchange(result: dict, case: str, variant: str, turn: int) -> dict:
    """One exchange of a `run_against` run as its journal recorded it."""
    for ex in journal(result):
        if (ex.get("case_id"), ex.get("variant"), ex.get("turn")) == (case, variant, turn):
            return ex
    pytest.fail(f"no {case} {variant} turn {turn} in the journal")


def turns(result: dict, case: str, variant: str) -> set[int]:
    """The turns a `run_against` run journaled for one case and API variant."""
    return {ex["turn"] for ex in journal(result) if (ex.get("case_id"), ex.get("variant")) == (case, variant)}


@pytest.fixture(scope="session")
def real_width_repo(tmp_path_factory):
    """gpt-oss-20b's exact widths at 2 layers, random seeded weights, laid out as a published repository: HF
    MXFP4 at the root, OpenAI's layout in original/, both sharded with an index. Written once per session
    (about 6 GB) for the real_width tests of tests/test_real_width.py and tests/test_tensor_parallel.py, and
    removed when the session ends. Refused up front where the disk cannot hold it, so that a full disk fails
    these tests with its cause instead of every later test that writes a file."""
    from verifier.reference.synthetic import write_real_width

    root = tmp_path_factory.mktemp("real-width")
    free_gb = shutil.disk_usage(root).free / 2**30
    if free_gb < REAL_WIDTH_DISK_GB:
        pytest.fail(f"the real-width repository needs about {REAL_WIDTH_DISK_GB} GB free under {root}; {free_gb:.1f} GB is")
    yield write_real_width(root / "gpt-oss-20b-2l", seed=0)
    shutil.rmtree(root, ignore_errors=True)
