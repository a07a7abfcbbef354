"""A verification run: send every suite's requests, keep a journal, apply the checks, write results."""

from __future__ import annotations

import datetime
import json
import os
import secrets
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from pydantic import BaseModel, Field

from verifier import __version__, calibration, harmony
from verifier import golden as golden_store
from verifier.calibration import Calibration
from verifier.checks import Exchange, drift, evaluate, merge
from verifier.checks.base import VARIANTS
from verifier.errors import ProviderError, UsageError
from verifier.golden import GoldenFile
from verifier.observation import Observation
from verifier.paths import golden_dir
from verifier.providers import Provider, ScoringUnsupported, TokenizeUnsupported
from verifier.result import Cost, ProviderInfo, RunResult, SuiteInfo, run_verdict
from verifier.suites import Case, Suite, load_suite

BUILTIN_MODEL = "gpt-oss-conformance"
DEFAULT_GOLDEN = Path("gpt-oss-conformance") / "fp32"
DEFAULT_SUITES = ["harmony", "tools", "effort", "drift"]
BEHAVIOUR_VARIANTS = ["chat", "chat-stream", "responses", "responses-stream", "completions"]
FAMILY_VARIANTS = {"effort": ["chat", "responses"]}
MAX_TURNS = 4
SCORE_TOP_K = 20
SAMPLES_PER_CASE = 16
DRIFT_METHODS = ("auto", "teacher", "greedy", "sampling")


class RunConfig(BaseModel):
    """What to verify and where to write it."""

    base_url: str | None = None
    """Provider base URL ending in /v1; None starts the built-in provider on the conformance checkpoint."""
    model: str | None = None
    api_key: str | None = Field(default=None, exclude=True, repr=False)
    """Credential, from the environment; never written anywhere."""
    suites: list[str] = Field(default_factory=lambda: list(DEFAULT_SUITES))
    golden: Path | None = None
    """Directory of golden files (`<suite>.json`); default: the conformance checkpoint's fp32 golden."""
    apis: list[str] | None = None
    """Restrict to these API variants."""
    out: Path = Path("reports")
    faults: list[str] = Field(default_factory=list)
    variants: list[str] = Field(default_factory=list)
    """Honest variants of the built-in provider (see `gpt-oss-verify faults`)."""
    drift_method: str = "auto"
    """`auto` (teacher forcing, else greedy logprobs, else sampling) or one of them forced."""
    score_all: bool = False
    """Score every golden position instead of passing once the calibrated power is reached."""
    timeout: float = 120.0


def _variants(suite: Suite, allowed: list[str] | None) -> list[str]:
    behavioural = [f for f in suite.families if f != "drift"]
    if not behavioural:
        return []
    names = FAMILY_VARIANTS.get(behavioural[0], BEHAVIOUR_VARIANTS) if len(behavioural) == 1 else BEHAVIOUR_VARIANTS
    return [v for v in names if allowed is None or v in allowed]


class Journal:
    """Append-only JSONL of every exchange, flushed as each completes."""

    def __init__(self, path: Path):
        self.path = path
        self.fh = open(path, "a", encoding="utf-8")

    def write(self, exchange: Exchange) -> None:
        self.fh.write(exchange.model_dump_json() + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


class Runner:
    def __init__(self, provider: Provider, journal: Journal, progress: Callable[[str], None] | None = None):
        self.provider = provider
        self.journal = journal
        self.progress = progress or (lambda _: None)
        self.cost = Cost()
        self.prompt_ids_supported: bool | None = None
        self.exchanges: list[Exchange] = []

    def _send(self, variant: str, request: dict, golden_date: str) -> tuple[dict, Observation]:
        spec = VARIANTS[variant]
        if spec.api == "chat":
            return request, self.provider.chat(request, spec.stream)
        if spec.api == "responses":
            body = harmony.chat_to_responses(request)
            for key in ("temperature", "top_p"):
                if key in request:
                    body[key] = request[key]
            if "max_tokens" in request:
                body["max_output_tokens"] = request["max_tokens"]
            return body, self.provider.responses(body, spec.stream)
        prompt = harmony.render_chat(request, golden_date)
        body = {"prompt": prompt, "max_tokens": request.get("max_tokens", 256)}
        return body, self.provider.completions_harmony(prompt, body["max_tokens"], spec.stream)

    def _record(self, exchange: Exchange) -> Exchange:
        self.journal.write(exchange)
        self.exchanges.append(exchange)
        obs = exchange.observation
        self.cost.requests += 1
        if obs is not None:
            self.cost.prompt_tokens += obs.usage.prompt_tokens or 0
            self.cost.completion_tokens += obs.usage.completion_tokens or 0
        return exchange

    def run_loop(self, suite: Suite, case: Case, variant: str, golden_date: str) -> list[Exchange]:
        """One case on one API variant: the first request, then each tool-loop follow-up."""
        out = []
        request: dict | None = case.request
        for turn in range(1, MAX_TURNS + 1):
            started = time.monotonic()
            body, obs = self._send(variant, request, golden_date)
            out.append(self._record(Exchange(suite=suite.name, case_id=case.id, variant=variant, turn=turn,
                                             request=body, chat_request=request, observation=obs,
                                             elapsed_s=time.monotonic() - started)))
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
        ex = Exchange(suite=suite.name, case_id=case.id, variant="score", turn=turn,
                      request={"prompt_tokens": len(tokens), "scored_from": start}, chat_request=ref.request)
        began = time.monotonic()
        try:
            ex.score = self.provider.score(tokens, start, SCORE_TOP_K, candidates)
        except ProviderError as exc:
            ex.error, ex.unsupported = str(exc), isinstance(exc, ScoringUnsupported)
        ex.elapsed_s = time.monotonic() - began
        self.cost.prompt_tokens += len(tokens)
        return self._record(ex)

    def _decided(self, turns: list, calibration: Calibration | None) -> bool:
        if calibration is None or not turns:
            return False
        return drift.decide(turns, calibration, final=False).verdict is not None

    def teacher_forcing(self, suite: Suite, golden: GoldenFile, calibration: Calibration | None) -> list[Exchange]:
        """Score golden turns in suite order until the sequential test decides (or the provider cannot)."""
        out, turns = [], []
        flip = calibration.flip_margin if calibration else float("inf")
        for case in suite.cases:
            for turn, ref in enumerate(golden.record(case.id).turns, 1):
                ex = self._score_turn(suite, case, turn, ref)
                out.append(ex)
                if ex.unsupported:
                    return out
                if ex.score is not None:
                    turns.append(drift.turn_drift(f"{case.id}#{turn}", ref, ex.score.positions, flip))
                if self._decided(turns, calibration):
                    return out
        return out

    def greedy_logprobs(self, suite: Suite, golden: GoldenFile, calibration: Calibration | None) -> list[Exchange]:
        """Greedy chat with top_logprobs on each case's first turn, until the sequential test decides."""
        out, turns = [], []
        calibration = calibration.greedy if calibration else None
        flip = calibration.flip_margin if calibration else float("inf")
        for case in suite.cases:
            ref = golden.record(case.id).turns[0]
            request = {**ref.request, "temperature": 0, "logprobs": True, "top_logprobs": SCORE_TOP_K,
                       "max_tokens": len(ref.completion_token_ids) + 4}
            obs = self.provider.chat(request)
            out.append(self._record(Exchange(suite=suite.name, case_id=case.id, variant="greedy-logprobs", turn=1,
                                             request=request, chat_request=ref.request, observation=obs)))
            if not obs.ok or not obs.logprobs:
                return out
            positions, departure = drift.greedy_positions(ref, obs.logprobs, flip)
            turns.append(drift.turn_drift(case.id, ref, positions, flip))
            if departure or self._decided(turns, calibration):
                return out
        return out

    def sampling(self, suite: Suite, golden: GoldenFile) -> list[Exchange]:
        """Temperature-1 samples of each case's first turn."""
        out = []
        for case in suite.cases:
            ref = golden.record(case.id).turns[0]
            for i in range(SAMPLES_PER_CASE):
                request = {**ref.request, "temperature": 1.0, "top_p": 1.0, "seed": i,
                           "max_tokens": len(ref.completion_token_ids) + 4}
                out.append(self._record(Exchange(suite=suite.name, case_id=case.id, variant="sampling", turn=1,
                                                 request=request, chat_request=ref.request,
                                                 observation=self.provider.chat(request))))
        return out

    def run_drift(self, suite: Suite, golden: GoldenFile, calibration: Calibration | None, method: str) -> list[Exchange]:
        """Teacher forcing where the provider offers it, else greedy logprobs, else sampling."""
        out: list[Exchange] = []
        if method in ("auto", "teacher"):
            out += self.teacher_forcing(suite, golden, calibration)
            if method == "teacher" or not all(ex.unsupported for ex in out):
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
        ex = Exchange(suite=suite.name, case_id=case.id, variant="prompt-ids", turn=1, request=case.request,
                      chat_request=case.request)
        try:
            ex.tokens, ex.source = self.provider.prompt_token_ids(case.request)
            self.prompt_ids_supported = True
        except ProviderError as exc:
            ex.error, ex.unsupported = str(exc), isinstance(exc, TokenizeUnsupported)
            if ex.unsupported:
                self.prompt_ids_supported = False
        return self._record(ex)

    def run_suite(self, suite: Suite, golden: GoldenFile, allowed: list[str] | None,
                  calibration: Calibration | None = None, drift_method: str = "auto") -> list[Exchange]:
        exchanges = []
        if "drift" in suite.families and (allowed is None or "score" in allowed):
            exchanges += self.run_drift(suite, golden, calibration, drift_method)
        for case in suite.cases:
            if "rendering" in suite.families and (allowed is None or "prompt-ids" in allowed):
                if (ex := self.prompt_ids_case(suite, case)) is not None:
                    exchanges.append(ex)
            for variant in _variants(suite, allowed):
                if VARIANTS[variant].api == "completions" and harmony.forced_header(case.request.get("tool_choice")):
                    continue  # tool_choice is a server-side constraint: a raw prompt cannot carry it
                exchanges += self.run_loop(suite, case, variant, golden.provenance.date)
            self.progress(f"{suite.name}/{case.id}")
        return exchanges


def new_run_id() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def load_golden(suite: Suite, root: Path) -> GoldenFile:
    path = root / f"{suite.name}.json"
    golden = golden_store.load(path)
    golden_store.check_matches(golden, suite, path)
    return golden


def _start_builtin(config: RunConfig, stack: ExitStack) -> tuple[str, str]:
    from verifier.serve import start_background
    from verifier.testmodel.compact import default_checkpoint

    server = start_background(default_checkpoint(), BUILTIN_MODEL, config.faults, variants=config.variants)
    stack.callback(server.stop)
    return server.url, BUILTIN_MODEL


def execute(config: RunConfig, progress: Callable[[str], None] | None = None) -> tuple[RunResult, Path]:
    """Run the verification; returns the result and the run directory it was written to."""
    from verifier.report import write_reports

    if config.base_url is None and config.model not in (None, BUILTIN_MODEL):
        raise UsageError("--model needs --base-url (without it the built-in provider serves the conformance model)")
    if config.base_url is not None and not config.model:
        raise UsageError("--model is required with --base-url")
    if (config.faults or config.variants) and config.base_url is not None:
        raise UsageError("--fault and --variant apply to the built-in provider only (leave out --base-url)")
    unknown = sorted(set(config.apis or []) - set(VARIANTS) - {"score", "prompt-ids", "greedy-logprobs", "sampling"})
    if unknown:
        raise UsageError(f"unknown API variants {unknown}; known: {', '.join([*VARIANTS, 'score', 'prompt-ids'])}")
    if config.drift_method not in DRIFT_METHODS:
        raise UsageError(f"unknown drift method {config.drift_method!r}; choose from {', '.join(DRIFT_METHODS)}")
    suites = [load_suite(name) for name in config.suites]
    root = config.golden or golden_dir() / DEFAULT_GOLDEN
    goldens = [load_golden(s, root) for s in suites]
    cal = calibration.load(root)
    if cal is not None and config.score_all:
        cal = cal.model_copy(update={"pass_after_positions": None})
    started = time.monotonic()
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    run_dir = config.out / new_run_id()
    run_dir.mkdir(parents=True, exist_ok=False)
    with ExitStack() as stack:
        if config.base_url is None:
            from verifier.serve import parse_names

            parse_names(config.faults, config.variants)
            base_url, model = _start_builtin(config, stack)
        else:
            base_url, model = config.base_url, config.model
        provider = Provider(base_url, model, config.api_key, config.timeout)
        stack.callback(provider.close)
        provider.models()  # fails fast, with a clear cause, if this is not an OpenAI-compatible endpoint
        journal = Journal(run_dir / "journal.jsonl")
        stack.callback(journal.close)
        runner = Runner(provider, journal, progress)
        results = []
        for suite, golden in zip(suites, goldens):
            exchanges = runner.run_suite(suite, golden, config.apis, cal, config.drift_method)
            results += evaluate(suite, golden, exchanges, cal)
    checks = merge(results)
    result = RunResult(
        run_id=run_dir.name, created=created, verifier_version=__version__,
        provider=ProviderInfo(base_url=base_url, model=model, builtin=config.base_url is None,
                              faults=sorted(config.faults), variants=sorted(config.variants),
                              score_mode=provider.score_mode, prompt_ids_mode=provider.prompt_ids_mode),
        suites=[SuiteInfo(name=s.name, version=s.version, sha256=s.sha256, golden=g.provenance.model_dump())
                for s, g in zip(suites, goldens)],
        apis=sorted({ex.variant for ex in runner.exchanges}),
        verdict=run_verdict(checks), checks=checks, cost=runner.cost,
        duration_s=round(time.monotonic() - started, 2),
    )
    (run_dir / "result.json").write_text(result.model_dump_json(indent=2))
    write_reports(result, run_dir)
    return result, run_dir


def load_result(path: Path) -> RunResult:
    from verifier.errors import VerifierError

    try:
        return RunResult.model_validate(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise VerifierError(f"no result file at {path}") from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise VerifierError(f"{path} is not a result.json of this verifier ({exc.__class__.__name__})") from None
