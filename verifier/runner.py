"""A verification run: send every suite's requests, keep a journal, apply the checks, write results."""

from __future__ import annotations

import datetime
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from pydantic import BaseModel

from verifier import __version__, harmony, journal
from verifier import golden as golden_store
from verifier.checks import evaluate, merge
from verifier.config import DRIFT_METHODS, RunConfig
from verifier.drift import calibration
from verifier.drift.align import greedy_positions
from verifier.drift.calibration import Calibration
from verifier.drift.sequential import SequentialTest
from verifier.drift.statistics import turn_drift
from verifier.errors import GoldenError, ProviderError, UsageError
from verifier.exchange import (
    API_VARIANTS,
    DEFAULT_API_VARIANTS,
    DRIFT_EVIDENCE,
    EVIDENCE_KINDS,
    FAMILY_API_VARIANTS,
    Exchange,
)
from verifier.golden import GoldenFile
from verifier.journal import Journal, Replay
from verifier.observation import Failure, Observation
from verifier.paths import golden_dir
from verifier.progress import Progress
from verifier.providers import Provider, request_id
from verifier.result import Cost, ProviderInfo, RunResult, SuiteInfo, run_verdict
from verifier.suites import Case, Suite, load_suite

BUILTIN_MODEL = "gpt-oss-conformance"
DEFAULT_GOLDEN = Path("gpt-oss-conformance") / "fp32"
MAX_TURNS = 4
SCORE_TOP_K = 20
SAMPLES_PER_CASE = 16
DRIFT_METHOD_OF: dict[str, str] = {"score": "teacher", "greedy-logprobs": "greedy", "sampling": "sampling"}
"""The drift method that gathers each drift evidence kind."""


class HarmonyPrompt(BaseModel):
    """What a `completions` API variant sends: the Chat request rendered to Harmony tokens by the reference."""

    prompt: list[int]
    max_tokens: int


Body = dict | HarmonyPrompt
"""A request on one API variant: a Chat or Responses JSON body, or a rendered Harmony prompt for Completions."""


def api_variants(suite: Suite, allowed: list[str] | None) -> list[str]:
    """The API variants a suite's behavioural checks run on: the defaults, or those of `allowed` (`--api`)
    that its families use (the effort family runs on the APIs that carry `reasoning_effort` only)."""
    behavioural = [f for f in suite.families if f != "drift"]
    if not behavioural:
        return []
    family = FAMILY_API_VARIANTS.get(behavioural[0]) if len(behavioural) == 1 else None
    if allowed is None:
        return list(family or DEFAULT_API_VARIANTS)
    return [v for v in (family or API_VARIANTS) if v in allowed]


def drift_method(allowed: list[str] | None, forced: str = "auto") -> str | None:
    """The drift method of a run: `--drift-method`, or the one drift evidence kind `--api` names.

    None when `--api` names no drift evidence kind (no drift requests are sent). All three kinds, or no
    `--api`, leave `--drift-method` in charge. A UsageError when `--api` names two of the three, or
    contradicts `--drift-method`.
    """
    kinds = [k for k in DRIFT_EVIDENCE if allowed is None or k in allowed]
    if len(kinds) == len(DRIFT_EVIDENCE):
        return forced
    if len(kinds) > 1:
        raise UsageError(f"--api names drift evidence {', '.join(kinds)}: name one of {', '.join(DRIFT_EVIDENCE)} "
                         f"(that method only), or all three (--drift-method auto tries them in turn)")
    method = DRIFT_METHOD_OF[kinds[0]] if kinds else None
    if forced != "auto" and method != forced:
        wanted = next(k for k, m in DRIFT_METHOD_OF.items() if m == forced)
        raise UsageError(f"--drift-method {forced} sends `{wanted}` requests: add --api {wanted}")
    return method


def _tasks(suite: Suite, allowed: list[str] | None) -> list[tuple[Case, str]]:
    """The (case, variant) tool loops of a suite's behavioural checks, in a fixed order."""
    out = []
    for case in suite.cases:
        for variant in api_variants(suite, allowed):
            if API_VARIANTS[variant].api == "completions" and harmony.forced_header(case.request.get("tool_choice")):
                continue  # tool_choice is a server-side constraint: a raw prompt cannot carry it
            out.append((case, variant))
    return out


def _wants_prompt_ids(suite: Suite, allowed: list[str] | None) -> bool:
    return "rendering" in suite.families and (allowed is None or "prompt-ids" in allowed)


def _wants_drift(suite: Suite, allowed: list[str] | None) -> bool:
    return "drift" in suite.families and any(allowed is None or k in allowed for k in DRIFT_EVIDENCE)


def unsent(suites: list[Suite], allowed: list[str] | None) -> list[str]:
    """The names of `allowed` (`--api`) that no suite of the run sends."""
    sent = {v for s in suites for v in api_variants(s, allowed)}
    sent |= {"prompt-ids"} if any(_wants_prompt_ids(s, allowed) for s in suites) else set()
    sent |= set(DRIFT_EVIDENCE) if any(_wants_drift(s, allowed) for s in suites) else set()
    return [name for name in allowed or [] if name not in sent]


def work_units(suite: Suite, allowed: list[str] | None) -> int:
    return len(_tasks(suite, allowed)) + len(suite.cases) * _wants_prompt_ids(suite, allowed) \
        + _wants_drift(suite, allowed)


class Runner:
    """Sends a run's requests, journals each exchange as it completes, replays journaled ones."""

    def __init__(self, provider: Provider, journal: Journal, progress: Progress | None = None,
                 replay: Replay | None = None, concurrency: int = 1):
        self.provider = provider
        self.journal = journal
        self.progress = progress or Progress()
        self.replay = replay or Replay([])
        self.concurrency = max(1, concurrency)
        self.cost = Cost()
        self.prompt_ids_supported: bool | None = None
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()

    def _exchange(self, ex: Exchange, perform: Callable[[Exchange], None]) -> Exchange:
        """Replay `ex` from the journal if it is there; else send it (perform fills it in) and journal it."""
        ex.key = journal.exchange_key(ex.suite, ex.case_id, ex.variant, ex.turn, ex.request, ex.chat_request)
        if (old := self.replay.take(ex.key)) is not None:
            self._adopt(old)
            return self._record(old, write=False)
        ex.started = time.time()
        began = time.monotonic()
        with request_id(ex.key):
            perform(ex)
        ex.elapsed_s = time.monotonic() - began
        return self._record(ex)

    def _adopt(self, ex: Exchange) -> None:
        """What the provider learned when a replayed exchange was first sent."""
        if ex.score is not None:
            self.provider.score_mode = ex.score.mode
        if ex.variant == "prompt-ids" and ex.source:
            self.provider.prompt_ids_mode = ex.source

    def _record(self, exchange: Exchange, write: bool = True) -> Exchange:
        with self.lock:
            if write:
                self.journal.write(exchange)
            self.exchanges.append(exchange)
            self.cost.requests += 1
            obs = exchange.observation
            if obs is not None:
                self.cost.prompt_tokens += obs.usage.prompt_tokens or 0
                self.cost.completion_tokens += obs.usage.completion_tokens or 0
            if exchange.variant == "score":
                self.cost.prompt_tokens += exchange.request.get("prompt_tokens", 0)
        return exchange

    def _body(self, variant: str, request: dict, golden_date: str) -> Body:
        """What is sent for a Chat request on an API variant (without `model`)."""
        spec = API_VARIANTS[variant]
        if spec.api == "chat":
            return request
        if spec.api == "responses":
            body = harmony.chat_to_responses(request)
            for key in ("temperature", "top_p"):
                if key in request:
                    body[key] = request[key]
            if "max_tokens" in request:
                body["max_output_tokens"] = request["max_tokens"]
            return body
        return HarmonyPrompt(prompt=harmony.render_chat(request, golden_date), max_tokens=request.get("max_tokens", 256))

    def _send(self, variant: str, body: Body) -> Observation:
        spec = API_VARIANTS[variant]
        if isinstance(body, HarmonyPrompt):
            return self.provider.completions_harmony(body.prompt, body.max_tokens, spec.stream)
        if spec.api == "chat":
            return self.provider.chat(body, spec.stream)
        return self.provider.responses(body, spec.stream)

    def _observe(self, ex: Exchange, call: Callable[[dict], Observation]) -> Exchange:
        """Send `ex.request` with `call` (unless the journal has it) and keep what came back."""
        def perform(target: Exchange) -> None:
            target.observation = call(target.request)

        return self._exchange(ex, perform)

    def run_loop(self, suite: Suite, case: Case, variant: str, golden_date: str) -> list[Exchange]:
        """One case on one API variant: the first request, then each tool-loop follow-up."""
        out = []
        request: dict | None = case.request
        for turn in range(1, MAX_TURNS + 1):
            body = self._body(variant, request, golden_date)
            sent = body.model_dump() if isinstance(body, HarmonyPrompt) else body
            ex = self._observe(Exchange(suite=suite.name, case_id=case.id, variant=variant, turn=turn, request=sent,
                                        chat_request=request), lambda _, body=body: self._send(variant, body))
            out.append(ex)
            obs = ex.observation
            if not obs.ok or not obs.tool_calls:
                break
            request = case.follow_up(request, obs.reasoning, obs.tool_calls)
            if request is None:
                break
        return out

    def _score_turn(self, suite: Suite, case: Case, turn: int, ref) -> Exchange:
        tokens = ref.prompt_token_ids + ref.completion_token_ids
        start = len(ref.prompt_token_ids)
        candidates = {start + i: s.top_ids for i, s in enumerate(ref.scores)}

        def perform(ex: Exchange) -> None:
            try:
                ex.score = self.provider.score(tokens, start, SCORE_TOP_K, candidates)
            except ProviderError as exc:
                ex.failure = Failure.of(exc)

        return self._exchange(Exchange(suite=suite.name, case_id=case.id, variant="score", turn=turn,
                                       request={"prompt_tokens": len(tokens), "scored_from": start},
                                       chat_request=ref.request), perform)

    def teacher_forcing(self, suite: Suite, golden: GoldenFile, calibration: Calibration | None) -> list[Exchange]:
        """Score golden turns in suite order until the sequential test decides (or the provider cannot)."""
        out: list[Exchange] = []
        test = SequentialTest(calibration) if calibration else None
        flip = calibration.flip_margin if calibration else float("inf")
        for case in suite.cases:
            for turn, ref in enumerate(golden.record(case.id).turns, 1):
                ex = self._score_turn(suite, case, turn, ref)
                out.append(ex)
                if ex.failed("unsupported"):
                    return out
                if test is not None and ex.score is not None:
                    test.add(turn_drift(f"{case.id}#{turn}", ref, ex.score.positions, flip))
                if test is not None and test.decided:
                    return out
        return out

    def greedy_logprobs(self, suite: Suite, golden: GoldenFile, calibration: Calibration | None) -> list[Exchange]:
        """Greedy chat with top_logprobs on each case's first turn, until the sequential test decides."""
        out: list[Exchange] = []
        calibration = calibration.greedy if calibration else None
        test = SequentialTest(calibration) if calibration else None
        flip = calibration.flip_margin if calibration else float("inf")
        for case in suite.cases:
            ref = golden.record(case.id).turns[0]
            request = {**ref.request, "temperature": 0, "logprobs": True, "top_logprobs": SCORE_TOP_K,
                       "max_tokens": len(ref.completion_token_ids) + 4}
            ex = self._observe(Exchange(suite=suite.name, case_id=case.id, variant="greedy-logprobs", turn=1,
                                        request=request, chat_request=ref.request),
                               self.provider.chat)
            out.append(ex)
            obs = ex.observation
            if not obs.ok or not obs.logprobs:
                return out
            aligned, positions, departure = greedy_positions(ref, obs.logprobs, flip)
            if test is not None:
                test.add(turn_drift(case.id, aligned, positions, flip))
            if departure or (test is not None and test.decided):
                return out
        return out

    def sampling(self, suite: Suite, golden: GoldenFile) -> list[Exchange]:
        """Temperature-1 samples of each case's first turn."""
        jobs = []
        for case in suite.cases:
            ref = golden.record(case.id).turns[0]
            for i in range(SAMPLES_PER_CASE):
                request = {**ref.request, "temperature": 1.0, "top_p": 1.0, "seed": i,
                           "max_tokens": len(ref.completion_token_ids) + 4}
                jobs.append((case, ref, request))

        def sample(job) -> Exchange:
            case, ref, request = job
            return self._observe(Exchange(suite=suite.name, case_id=case.id, variant="sampling", turn=1,
                                          request=request, chat_request=ref.request),
                                 self.provider.chat)

        return self._parallel(sample, jobs)

    def run_drift(self, suite: Suite, golden: GoldenFile, calibration: Calibration | None, method: str) -> list[Exchange]:
        """Teacher forcing where the provider offers it, else greedy logprobs, else sampling."""
        out: list[Exchange] = []
        if method in ("auto", "teacher"):
            out += self.teacher_forcing(suite, golden, calibration)
            if method == "teacher" or not all(ex.failed("unsupported") for ex in out):
                return out
        if method in ("auto", "greedy"):
            greedy = self.greedy_logprobs(suite, golden, calibration)
            out += greedy
            if method == "greedy" or any(ex.observation.logprobs for ex in greedy):
                return out
        return out + self.sampling(suite, golden)

    def prompt_ids_case(self, suite: Suite, case: Case) -> Exchange | None:
        """Ask how the server renders the case's first request (None once it is known not to say)."""
        if self.prompt_ids_supported is False:
            return None

        def perform(ex: Exchange) -> None:
            try:
                ex.tokens, ex.source = self.provider.prompt_token_ids(case.request)
            except ProviderError as exc:
                ex.failure = Failure.of(exc)

        ex = self._exchange(Exchange(suite=suite.name, case_id=case.id, variant="prompt-ids", turn=1,
                                     request=case.request, chat_request=case.request), perform)
        if ex.tokens is not None:
            self.prompt_ids_supported = True
        elif ex.failed("unsupported"):
            self.prompt_ids_supported = False
        return ex

    def _parallel(self, fn: Callable, jobs: list) -> list:
        """fn over jobs, `concurrency` at a time; results in job order."""
        if self.concurrency == 1 or len(jobs) < 2:
            return [fn(job) for job in jobs]
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="request")
        try:
            return list(pool.map(fn, jobs))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def run_suite(self, suite: Suite, golden: GoldenFile, allowed: list[str] | None,
                  calibration: Calibration | None = None, drift_method: str = "auto") -> list[Exchange]:
        exchanges = []
        if _wants_drift(suite, allowed):
            exchanges += self.run_drift(suite, golden, calibration, drift_method)
            self.progress.advance(f"{suite.name}: drift")
        if _wants_prompt_ids(suite, allowed):
            first, *rest = suite.cases  # the first settles whether the server shows prompt ids at all
            found = [self.prompt_ids_case(suite, first)] + self._parallel(lambda c: self.prompt_ids_case(suite, c), rest)
            exchanges += [ex for ex in found if ex is not None]
            for case in suite.cases:
                self.progress.advance(f"{suite.name}/{case.id}: prompt ids")

        def loop(task: tuple[Case, str]) -> list[Exchange]:
            case, variant = task
            out = self.run_loop(suite, case, variant, golden.provenance.date)
            self.progress.advance(f"{suite.name}/{case.id}: {variant}")
            return out

        for loop_exchanges in self._parallel(loop, _tasks(suite, allowed)):
            exchanges += loop_exchanges
        return exchanges


def new_run_id() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def load_golden(suite: Suite, root: Path) -> GoldenFile:
    path = root / f"{suite.name}.json"
    golden = golden_store.load(path)
    golden_store.check_matches(golden, suite, path)
    return golden


def _check_one_checkpoint(goldens: list[GoldenFile], root: Path, builtin: bool) -> None:
    """Refuse golden files of several checkpoints in one run, or of another model than the built-in one."""
    found = sorted({(g.provenance.checkpoint, g.provenance.checkpoint_sha256) for g in goldens})
    if len(found) > 1:
        names = ", ".join(f"{name} ({sha[:12]})" for name, sha in found)
        raise GoldenError(f"{root}: golden files of different checkpoints in one directory: {names}")
    if builtin and found:
        from verifier.reference.build import checkpoint_sha256
        from verifier.testmodel.compact import default_checkpoint

        name, sha = found[0]
        if sha != checkpoint_sha256(default_checkpoint()):
            raise GoldenError(f"{root}: golden is for checkpoint {name!r} ({sha[:12]}), not the conformance "
                              f"checkpoint the built-in provider serves; pass --base-url for that model's endpoint")


class RunManifest(BaseModel):
    """`run.json`: what a run was asked to do, so `--resume` can finish it."""

    run_id: str
    created: str
    verifier_version: str
    config: RunConfig
    """The run's settings (the API key is never written)."""


def _validate(config: RunConfig) -> None:
    if config.base_url is None and config.model not in (None, BUILTIN_MODEL):
        raise UsageError("--model needs --base-url (without it the built-in provider serves the conformance model)")
    if config.base_url is not None and not config.model:
        raise UsageError("--model is required with --base-url")
    if (config.faults or config.quirks) and config.base_url is not None:
        raise UsageError("--fault and --quirk apply to the built-in provider only (leave out --base-url)")
    unknown = sorted(set(config.apis or []) - set(API_VARIANTS) - set(EVIDENCE_KINDS))
    if unknown:
        raise UsageError(f"unknown API variants {unknown}; known: {', '.join([*API_VARIANTS, *EVIDENCE_KINDS])}")
    if config.drift_method not in DRIFT_METHODS:
        raise UsageError(f"unknown drift method {config.drift_method!r}; choose from {', '.join(DRIFT_METHODS)}")
    drift_method(config.apis, config.drift_method)
    if config.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if config.base_url is None:
        from verifier.serve import parse_names

        parse_names(config.faults, config.quirks)


def resume_config(run_dir: Path, overrides: RunConfig) -> tuple[RunConfig, RunManifest]:
    """The settings of an interrupted run, with this invocation's key, timeout, retries and concurrency."""
    path = Path(run_dir) / "run.json"
    try:
        manifest = RunManifest.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{run_dir} is not a run directory (no run.json)") from None
    except ValueError as exc:
        raise UsageError(f"{path} is not a run manifest of this verifier ({exc.__class__.__name__})") from None
    update = {name: getattr(overrides, name) for name in ("api_key", "timeout", "concurrency", "retry")}
    return manifest.config.model_copy(update={**update, "out": Path(run_dir).parent}), manifest


def _start_builtin(config: RunConfig, stack: ExitStack) -> tuple[str, str]:
    from verifier.serve import start_background
    from verifier.testmodel.compact import default_checkpoint

    server = start_background(default_checkpoint(), BUILTIN_MODEL, config.faults, quirks=config.quirks)
    stack.callback(server.stop)
    return server.url, BUILTIN_MODEL


def execute(config: RunConfig, progress: Progress | None = None, resume: Path | None = None) -> tuple[RunResult, Path]:
    """Run the verification (or finish the run in `resume`); returns the result and its run directory.

    Everything that can be refused is checked before a run directory is made, so bad input leaves
    earlier results as they were.
    """
    from verifier.report import write_reports
    from verifier.report.evidence import collect as collect_evidence

    manifest = None
    if resume is not None:
        config, manifest = resume_config(resume, config)
    _validate(config)
    method = drift_method(config.apis, config.drift_method)
    suites = [load_suite(name) for name in config.suites]
    if missing := unsent(suites, config.apis):
        raise UsageError(f"--api {' '.join(missing)}: no suite of this run sends it (suites: {', '.join(config.suites)})")
    root = config.golden or golden_dir() / DEFAULT_GOLDEN
    goldens = [load_golden(s, root) for s in suites]
    _check_one_checkpoint(goldens, root, config.base_url is None)
    cal = calibration.load(root)
    if cal is not None and config.score_all:
        cal = cal.model_copy(update={"pass_after_positions": None})
    started = time.monotonic()
    progress = progress or Progress()
    with ExitStack() as stack:
        if config.base_url is None:
            base_url, model = _start_builtin(config, stack)
        else:
            base_url, model = config.base_url, config.model
        provider = Provider(base_url, model, config.api_key, config.timeout, retry=config.retry)
        stack.callback(provider.close)
        provider.models()  # fails fast, with a clear cause, if this is not an OpenAI-compatible endpoint
        if manifest is None:
            manifest = RunManifest(run_id=new_run_id(), created=_now(), verifier_version=__version__, config=config)
            run_dir = config.out / manifest.run_id
            run_dir.mkdir(parents=True, exist_ok=False)
            (run_dir / "run.json").write_text(manifest.model_dump_json(indent=2))
        else:
            run_dir = Path(resume)
        replay = Replay(journal.read(run_dir / journal.FILE))
        log = Journal(run_dir / journal.FILE, config.api_key)
        stack.callback(log.close)
        runner = Runner(provider, log, progress, replay, config.concurrency)
        progress.start(sum(work_units(s, config.apis) for s in suites))
        results = []
        try:
            for suite, golden in zip(suites, goldens):
                exchanges = runner.run_suite(suite, golden, config.apis, cal, method)
                results += evaluate(suite, golden, exchanges, cal)
        except KeyboardInterrupt as interrupt:
            interrupt.run_dir = run_dir  # the CLI says how to resume
            raise
    checks = merge(results)
    result = RunResult(
        run_id=manifest.run_id, created=manifest.created, verifier_version=__version__,
        provider=ProviderInfo(base_url=base_url, model=model, builtin=config.base_url is None,
                              faults=sorted(config.faults), variants=sorted(config.quirks),
                              score_mode=provider.score_mode, prompt_ids_mode=provider.prompt_ids_mode),
        suites=[SuiteInfo(name=s.name, version=s.version, sha256=s.sha256, golden=g.provenance)
                for s, g in zip(suites, goldens)],
        apis=sorted({ex.variant for ex in runner.exchanges}),
        verdict=run_verdict(checks), checks=checks, cost=runner.cost,
        duration_s=round(time.monotonic() - started, 2),
        evidence=collect_evidence(runner.exchanges, {s.name: g for s, g in zip(suites, goldens)}), config=config,
    )
    if resume is not None:
        progress.note(f"resumed: {replay.replayed} exchanges replayed from the journal, "
                      f"{len(runner.exchanges) - replay.replayed} sent")
    _write_result(result, run_dir, config.api_key)
    write_reports(result, run_dir)
    return result, run_dir


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


def _write_result(result: RunResult, run_dir: Path, secret: str | None) -> None:
    text = result.model_dump_json(indent=2)
    if secret and secret in text:
        text = text.replace(secret, "[REDACTED]")
    tmp = run_dir / "result.json.tmp"
    tmp.write_text(text)
    os.replace(tmp, run_dir / "result.json")
