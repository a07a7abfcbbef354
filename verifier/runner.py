"""A verification run: send every suite's requests, keep a journal, apply the checks, write results."""

from __future__ import annotations

import datetime
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from verifier import __version__, harmony, journal
from verifier import golden as golden_store
from verifier.capabilities import Capabilities
from verifier.checks import checks_for, evaluate, merge
from verifier.checks.drift import greedy_k, scored_k
from verifier.config import DRIFT_METHODS, RunConfig
from verifier.drift import calibration
from verifier.drift.align import greedy_positions
from verifier.drift.calibration import Calibration
from verifier.drift.sequential import SequentialTest
from verifier.drift.statistics import completion_probability, sample_allocation, turn_drift
from verifier.errors import GoldenError, ProviderError, UsageError, VerifierError
from verifier.exchange import (
    API_VARIANTS,
    DEFAULT_API_VARIANTS,
    DRIFT_EVIDENCE,
    EVIDENCE_KINDS,
    FAMILY_API_VARIANTS,
    RESEND_SUFFIX,
    EarlierSend,
    Exchange,
)
from verifier.golden import GoldenFile, GoldenTurn
from verifier.journal import Journal, Replay
from verifier.observation import RESEND_ROUNDS, Failure, Observation, deterministic
from verifier.paths import golden_dir
from verifier.progress import Progress
from verifier.providers import Provider, logprobs_cap, request_id
from verifier.providers.probe import probe
from verifier.result import CheckResult, Cost, ProviderInfo, RunResult, SuiteInfo, run_verdict
from verifier.scores import PositionScore
from verifier.suites import Case, Suite, load_suite, reasoning_field
from verifier.verdict import Outcome, Verdict

BUILTIN_MODEL = "gpt-oss-conformance"
DEFAULT_GOLDEN = Path("gpt-oss-conformance") / "fp32"
MAX_TURNS = 4
SCORE_TOP_K = calibration.FULL_K  # golden's top-K: what a run asks for and calibration measured
SAMPLES_PER_CASE = 16
"""Temperature-1 samples a drift case is worth: a suite's sampling budget is this times its cases."""
GREEDY_SHAPES = 3
"""Greedy logprobs requests a host may refuse for their shape (a cap, an integer `logprobs`) before one is kept."""
INTEGER_LOGPROBS = re.compile(r"integer|\bint\b|must be a number")
"""A 400 that wants chat `logprobs` as an integer (some hosts take `logprobs: k` instead of `top_logprobs`)."""
CAPABILITIES_FILE = "capabilities.json"
"""What the probe found, kept in the run directory so that `--resume` decides as the run did."""
DRIFT_METHOD_OF: dict[str, str] = {"score": "teacher", "greedy-logprobs": "greedy", "sampling": "sampling"}
"""The drift method that gathers each drift evidence kind."""


class _Reshaped(Exception):
    """A greedy logprobs request refused for its shape, now changed: send it again (not journaled)."""


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


def _tasks(suite: Suite, allowed: list[str] | None, caps: Capabilities | None = None) -> list[tuple[Case, str]]:
    """The (case, variant) tool loops of a suite's behavioural checks, in a fixed order: those the endpoint
    offers (`caps`; None: everything)."""
    out = []
    for case in suite.cases:
        for variant in api_variants(suite, allowed):
            if API_VARIANTS[variant].api == "completions" and harmony.forced_header(case.request.get("tool_choice")):
                continue  # tool_choice is a server-side constraint: a raw prompt cannot carry it
            if caps is not None and unsupported(caps, case, variant) is not None:
                continue
            out.append((case, variant))
    return out


def _tool_choice_form(request: dict) -> str | None:
    """The probed `tool_choice` form a request uses: `named` (an object), `string` (`"required"`), or None."""
    choice = request.get("tool_choice")
    return "named" if isinstance(choice, dict) else "string" if choice == "required" else None


def unsupported(caps: Capabilities, case: Case, variant: str) -> str | None:
    """Why the endpoint cannot be asked `case` on `variant` (None: it can, or may)."""
    if reason := caps.unsupported_reason(variant):
        return reason
    form = _tool_choice_form(case.request)
    if form and API_VARIANTS[variant].api == "chat" and caps.tool_choice.get(form) is False:
        return f"tool_choice as a {form} form ({caps.notes.get(f'tool_choice.{form}', 'refused')})"
    if harmony.json_schema_format(case.request) and API_VARIANTS[variant].api == "chat" \
            and caps.response_format is False:
        return caps.why("response_format")
    return None


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


def work_units(suite: Suite, allowed: list[str] | None, caps: Capabilities | None = None) -> int:
    return len(_tasks(suite, allowed, caps)) + len(suite.cases) * _wants_prompt_ids(suite, allowed) \
        + _wants_drift(suite, allowed)


DRIFT_NEEDS: dict[str, str] = {"teacher": "teacher_forcing", "greedy": "greedy_logprobs"}
"""The capability each drift method needs (sampling needs chat, which every run needs)."""


def drift_order(caps: Capabilities | None, method: str) -> tuple[list[str], dict[str, str]]:
    """The drift methods to try in turn (`auto`: teacher forcing, greedy logprobs, sampling; else the one forced),
    those the endpoint offers, and why each left out is (method -> reason)."""
    wanted = ["teacher", "greedy", "sampling"] if method == "auto" else [method]
    order, left_out = [], {}
    for name in wanted:
        need = DRIFT_NEEDS.get(name)
        if caps is not None and need is not None and getattr(caps, need) is False:
            left_out[name] = _drift_reason(caps, name)
        else:
            order.append(name)
    return order, left_out


def _drift_reason(caps: Capabilities, method: str) -> str:
    if method == "greedy":
        return caps.why("chat_logprobs")
    if caps.completions is False:
        return caps.why("completions")
    return f"no prompt scoring on /v1/completions: {caps.why('prompt_logprobs')}; {caps.why('echo_logprobs')}"


UNSUPPORTED = "unsupported by this endpoint: "
"""How a SKIP outcome for something the endpoint does not offer begins."""
DRIFT_CHECK_OF = {"teacher": "drift.teacher_forced", "greedy": "drift.greedy_logprobs", "sampling": "drift.sampling"}


def unsupported_results(suite: Suite, allowed: list[str] | None, caps: Capabilities | None,
                        method: str | None) -> list[CheckResult]:
    """SKIP outcomes, with the reason, for what the suite would have sent but the endpoint does not offer: each
    API variant on the checks that read it, prompt ids, drift methods left out. `merge` adds them to the checks."""
    if caps is None:
        return []
    skips: dict[str, list[Outcome]] = {}
    for case, variant in _tasks(suite, allowed):
        if (reason := unsupported(caps, case, variant)) is None:
            continue
        case_id = None if caps.unsupported_reason(variant) else case.id  # a whole variant, or this case's request
        for spec in checks_for(suite.families):
            if spec.family != "drift" and spec.id != "rendering.prompt_ids" and API_VARIANTS[variant].api in spec.apis:
                found = skips.setdefault(spec.id, [])
                if not any((o.variant, o.case_id) == (variant, case_id) for o in found):
                    found.append(_skip(suite, reason, variant, case_id))
    if _wants_prompt_ids(suite, allowed) and caps.prompt_ids is False:
        skips["rendering.prompt_ids"] = [_skip(suite, caps.why("prompt_ids_sources"), "prompt-ids")]
    if method is not None and _wants_drift(suite, allowed):
        for name, reason in drift_order(caps, method)[1].items():
            skips[DRIFT_CHECK_OF[name]] = [_skip(suite, reason, next(k for k, m in DRIFT_METHOD_OF.items()
                                                                     if m == name))]
    specs = {spec.id: spec for spec in checks_for(suite.families)}
    return [CheckResult(id=i, family=specs[i].family, title=specs[i].title, why=specs[i].why, source=specs[i].source,
                        compares=specs[i].compares, verdict=Verdict.SKIP, summary=outcomes[0].line, outcomes=outcomes)
            for i, outcomes in skips.items() if i in specs]


def _skip(suite: Suite, reason: str, variant: str, case_id: str | None = None) -> Outcome:
    return Outcome(verdict=Verdict.SKIP, suite=suite.name, variant=variant, case_id=case_id,
                   message=UNSUPPORTED + reason)


class Budget(BaseModel):
    """`run --max-requests / --max-tokens`: what this invocation may send (None: no limit), the probe's requests
    and tokens included (the probe itself always finishes: the run then stops before its first request)."""

    max_requests: int | None = None
    max_tokens: int | None = None
    """Prompt and completion tokens, as the provider reports them."""

    def reached(self, spent: Cost) -> str | None:
        """Why no further request may be sent (None: it may)."""
        if self.max_requests is not None and spent.requests >= self.max_requests:
            return f"--max-requests {self.max_requests} reached ({spent.requests} requests sent, the probe's included)"
        tokens = spent.prompt_tokens + spent.completion_tokens
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return f"--max-tokens {self.max_tokens} reached ({tokens} tokens spent, the probe's included)"
        return None


class BudgetReached(VerifierError):
    """The run stopped at its budget; its run directory is resumable (`execute` adds how)."""


def _add_cost(cost: Cost, exchange: Exchange, count: bool) -> None:
    """Add an exchange's requests (when `count`) and tokens to `cost`."""
    cost.requests += count
    obs = exchange.observation
    if obs is not None:
        cost.prompt_tokens += obs.usage.prompt_tokens or 0
        cost.completion_tokens += obs.usage.completion_tokens or 0
    if exchange.variant == "score":
        cost.prompt_tokens += exchange.request.get("prompt_tokens", 0)


def greedy_request(ref: GoldenTurn, k: int = SCORE_TOP_K, form: str = "boolean") -> dict:
    """A golden turn's greedy chat request with logprobs in the shape the host takes: `top_logprobs` (`form`
    boolean: `logprobs: true`) or an integer `logprobs` (`form` integer), `k` entries; what a run sends and the
    greedy calibration's honest endpoints answer."""
    body = {**ref.request, "temperature": 0, "max_tokens": len(ref.completion_token_ids) + 4}
    if form == "integer":
        return {**body, "logprobs": k}
    return {**body, "logprobs": True, "top_logprobs": k}


def sampling_plan(suite: Suite, golden: GoldenFile) -> list[tuple[Case, GoldenTurn, int]]:
    """Per case, its golden first turn and how many temperature-1 samples to draw of it (`sample_allocation`
    of the suite's budget, by the probability golden's completion has under the reference)."""
    firsts = [(case, golden.record(case.id).turns[0]) for case in suite.cases]
    counts = sample_allocation([completion_probability(ref) for _, ref in firsts], SAMPLES_PER_CASE * len(firsts))
    return [(case, ref, count) for (case, ref), count in zip(firsts, counts) if count]


def _sequential(calibration: Calibration, scored: list[tuple[str, GoldenTurn, list[PositionScore], int]],
                test: SequentialTest | None) -> SequentialTest:
    """The sequential test over the turns scored so far (key, golden turn, positions, top-list length
    reported), with the calibration for the shortest top list any of them reported, as the checks
    choose it; rebuilt when a turn reports a shorter list than those before."""
    fitting = calibration.for_k(min(k for *_, k in scored))
    if test is not None and test.thresholds is fitting:
        key, ref, positions, _ = scored[-1]
        test.add(turn_drift(key, ref, positions, fitting.flip_margin, fitting.truncation))
        return test
    test = SequentialTest(fitting)
    test.extend(turn_drift(key, ref, positions, fitting.flip_margin, fitting.truncation)
                for key, ref, positions, _ in scored)
    return test


class Runner:
    """Sends a run's requests, journals each exchange as it completes, replays journaled ones."""

    def __init__(self, provider: Provider, journal: Journal, progress: Progress | None = None,
                 replay: Replay | None = None, concurrency: int = 1, capabilities: Capabilities | None = None,
                 budget: Budget | None = None, spent: Cost | None = None):
        self.provider = provider
        self.journal = journal
        self.progress = progress or Progress()
        self.replay = replay or Replay([])
        self.concurrency = max(1, concurrency)
        self.cost = Cost()
        caps_k = capabilities.chat_top_logprobs if capabilities is not None else None
        self.greedy_k = SCORE_TOP_K if caps_k is None else min(SCORE_TOP_K, caps_k)
        """`top_logprobs` of greedy requests: SCORE_TOP_K, or the host's cap."""
        self.greedy_form = "boolean"
        """`boolean` (`logprobs: true` + `top_logprobs`) or `integer` (`logprobs: k`, as some hosts take it)."""
        self.capabilities = capabilities
        """What the endpoint offers (None: not probed; everything is sent)."""
        self.budget = budget or Budget()
        self.spent = spent.model_copy() if spent is not None else Cost()
        """What this invocation sent, the probe included (replayed exchanges are not counted): what the budget
        is held to."""
        self.prompt_ids_supported: bool | None = capabilities.prompt_ids if capabilities else None
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()

    def _exchange(self, ex: Exchange, perform: Callable[[Exchange], None], key_suffix: str = "") -> Exchange:
        """Replay `ex` from the journal if it is there; else send it (perform fills it in) and journal it."""
        ex.key = journal.exchange_key(ex.suite, ex.case_id, ex.variant, ex.turn, ex.request, ex.chat_request)
        ex.key += key_suffix
        if (old := self.replay.take(ex.key)) is not None:
            self._adopt(old)
            return self._record(old, write=False)
        self._reserve()
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
            if ex.score.top_k is not None and ex.score.top_k < SCORE_TOP_K:
                self.provider.score_k = ex.score.top_k
        if ex.variant == "prompt-ids" and ex.source:
            self.provider.prompt_ids_mode = ex.source

    def _reserve(self) -> None:
        """Count one more request to send, or raise `BudgetReached` if the budget is spent."""
        with self.lock:
            if reason := self.budget.reached(self.spent):
                raise BudgetReached(reason)
            self.spent.requests += 1

    def _record(self, exchange: Exchange, write: bool = True) -> Exchange:
        with self.lock:
            if write:
                self.journal.write(exchange)
            self.exchanges.append(exchange)
            _add_cost(self.cost, exchange, count=True)
            if write:
                _add_cost(self.spent, exchange, count=False)
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
        return self._loop(suite, case, variant, golden_date, case.request, 1)

    def _loop(self, suite: Suite, case: Case, variant: str, golden_date: str, request: dict,
              first: int) -> list[Exchange]:
        """A tool loop from turn `first`, whose Chat request is `request`."""
        out = []
        for turn in range(first, MAX_TURNS + 1):
            body = self._body(variant, request, golden_date)
            sent = body.model_dump() if isinstance(body, HarmonyPrompt) else body
            ex = self._observe(Exchange(suite=suite.name, case_id=case.id, variant=variant, turn=turn, request=sent,
                                        chat_request=request), lambda _, body=body: self._send(variant, body))
            out.append(ex)
            request = _next_request(case, request, ex)
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
        """Score golden turns in suite order until the sequential test decides (or the provider cannot).
        The test is that of the calibration for the top-list length the provider reports."""
        out: list[Exchange] = []
        scored: list[tuple[str, GoldenTurn, list[PositionScore], int]] = []
        test: SequentialTest | None = None
        for case in suite.cases:
            for turn, ref in enumerate(golden.record(case.id).turns, 1):
                ex = self._score_turn(suite, case, turn, ref)
                out.append(ex)
                if ex.failed("unsupported"):
                    return out
                if calibration is not None and ex.score is not None:
                    scored.append((f"{case.id}#{turn}", ref, ex.score.positions, scored_k([ex.score])))
                    test = _sequential(calibration, scored, test)
                if test is not None and test.decided:
                    return out
        return out

    def _greedy_request(self, ref) -> dict:
        return greedy_request(ref, self.greedy_k, self.greedy_form)

    def _reshaped(self, obs: Observation) -> bool:
        """Whether a 400 to a greedy logprobs request named the shape (a cap, an integer `logprobs`) and
        the shape is now changed to fit; such a refusal says nothing about conformance."""
        failure = obs.failure
        if failure is None or failure.status != 400:
            return False
        if (cap := logprobs_cap(failure.message, self.greedy_k)) is not None:
            self.greedy_k = cap
            return True
        if self.greedy_form == "boolean" and INTEGER_LOGPROBS.search(failure.message.lower()):
            self.greedy_form = "integer"
            return True
        return False

    def _greedy_case(self, suite: Suite, case: Case, ref) -> Exchange:
        """One case's greedy request, in the shape the host takes (found on the first refusals, which are
        not journaled); a 400 that refuses logprobs altogether is recorded as unsupported."""
        for _ in range(GREEDY_SHAPES):
            def perform(ex: Exchange) -> None:
                obs = self.provider.chat(ex.request)
                if self._reshaped(obs):
                    raise _Reshaped
                if obs.failure is not None and obs.failure.status == 400 and "logprob" in obs.failure.message.lower():
                    ex.failure = Failure(kind="unsupported", message=f"chat logprobs refused: {obs.failure.message}")
                    return
                ex.observation = obs

            try:
                return self._exchange(Exchange(suite=suite.name, case_id=case.id, variant="greedy-logprobs", turn=1,
                                               request=self._greedy_request(ref), chat_request=ref.request), perform)
            except _Reshaped:
                continue
        return self._exchange(Exchange(suite=suite.name, case_id=case.id, variant="greedy-logprobs", turn=1,
                                       request=self._greedy_request(ref), chat_request=ref.request),
                              lambda ex: setattr(ex, "observation", self.provider.chat(ex.request)))

    def greedy_logprobs(self, suite: Suite, golden: GoldenFile, calibration: Calibration | None) -> list[Exchange]:
        """Greedy chat with top_logprobs on each case's first turn, until the sequential test decides.
        The test is that of the greedy calibration for the top-list length the host reports."""
        out: list[Exchange] = []
        calibration = calibration.greedy if calibration else None
        flip = calibration.flip_margin if calibration else float("inf")
        scored: list[tuple[str, GoldenTurn, list[PositionScore], int]] = []
        test: SequentialTest | None = None
        for case in suite.cases:
            ref = golden.record(case.id).turns[0]
            ex = self._greedy_case(suite, case, ref)
            out.append(ex)
            obs = ex.observation
            if obs is not None and obs.failure is not None and obs.failure.kind in ("http_status", "unavailable"):
                continue  # this request's bad luck (re-sent at the end), not the endpoint's want of logprobs
            if obs is None or not obs.ok or not obs.logprobs:
                return out
            aligned, positions, departure = greedy_positions(ref, obs.logprobs, flip, obs.reasoning_logprobs)
            if calibration is not None:
                scored.append((case.id, aligned, positions, greedy_k([ex])))
                test = _sequential(calibration, scored, test)
            if departure or (test is not None and test.decided):
                return out
        return out

    def sampling(self, suite: Suite, golden: GoldenFile) -> list[Exchange]:
        """Temperature-1 samples of the first turns (`sampling_plan`: where golden's completion is likely enough)."""
        jobs = []
        for case, ref, count in sampling_plan(suite, golden):
            for i in range(count):
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
        order = drift_order(self.capabilities, method)[0]  # what the endpoint offers, of what `method` allows
        if "teacher" in order:
            out += self.teacher_forcing(suite, golden, calibration)
            if method == "teacher" or not all(ex.failed("unsupported") for ex in out):
                return out
        if "greedy" in order:
            greedy = self.greedy_logprobs(suite, golden, calibration)
            out += greedy
            if method == "greedy" or any(ex.observation is not None and ex.observation.logprobs for ex in greedy):
                return out
        return out + self.sampling(suite, golden) if "sampling" in order else out

    def _ask_prompt_ids(self, ex: Exchange) -> None:
        try:
            ex.tokens, ex.source = self.provider.prompt_token_ids(ex.request)
        except ProviderError as exc:
            ex.failure = Failure.of(exc)

    def prompt_ids_case(self, suite: Suite, case: Case) -> Exchange | None:
        """Ask how the server renders the case's first request (None once it is known not to say)."""
        if self.prompt_ids_supported is False:
            return None
        ex = self._exchange(Exchange(suite=suite.name, case_id=case.id, variant="prompt-ids", turn=1,
                                     request=case.request, chat_request=case.request), self._ask_prompt_ids)
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
        except BudgetReached:
            pool.shutdown(wait=True, cancel_futures=True)  # requests in flight were paid for: journal them
            raise
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

        for loop_exchanges in self._parallel(loop, _tasks(suite, allowed, self.capabilities)):
            exchanges += loop_exchanges
        return self.resend_failures(suite, exchanges, golden.provenance.date)

    # -- the re-send pass: a random error is not the provider's answer to a request ------------------

    def resend_failures(self, suite: Suite, exchanges: list[Exchange], golden_date: str) -> list[Exchange]:
        """Send each request that got an error status, or no service, again after the rest of the suite, in
        rounds: a round sends every such request once more (`_resendable`); the next round, after that one,
        those whose sends are not yet the provider's answer (`observation.deterministic`), each request at
        most `RESEND_ROUNDS` times after its first send.

        A copy (journal key: the first send's plus `RESEND_SUFFIX` per re-send) keeps the failed sends before
        it in `earlier` and takes its place in what the checks judge; a tool loop goes on from it when it now
        succeeds (its follow-ups are first sends, re-sent in the next round if they fail). The same 4xx on
        every attempt of two sends, or the same 5xx on every attempt of all sends, is the provider's answer
        (`parsing.http_status` fails it). Teacher-forced scores are left to the drift engine.
        """
        while failed := [ex for ex in exchanges if _resendable(ex)]:
            self.progress.note(f"{suite.name}: {len(failed)} requests that failed are sent again")
            redone = dict(zip(map(id, failed), self._parallel(lambda ex: self._resend(suite, ex, golden_date),
                                                                failed)))
            exchanges = [again for ex in exchanges for again in redone.get(id(ex), [ex])]
        return exchanges

    def _resend(self, suite: Suite, ex: Exchange, golden_date: str) -> list[Exchange]:
        """`ex` sent again, and the rest of its tool loop when it now succeeds."""
        earlier = [*ex.earlier, EarlierSend(key=ex.key, started=ex.started, failure=_failure(ex))]
        again = self._exchange(Exchange(suite=ex.suite, case_id=ex.case_id, variant=ex.variant, turn=ex.turn,
                                        request=ex.request, chat_request=ex.chat_request, earlier=earlier),
                               self._perform_again(ex), key_suffix=RESEND_SUFFIX * len(earlier))
        if ex.variant not in API_VARIANTS:
            return [again]
        case = next(c for c in suite.cases if c.id == ex.case_id)
        request = _next_request(case, ex.chat_request, again) if ex.turn < MAX_TURNS else None
        return [again] if request is None else [again, *self._loop(suite, case, ex.variant, golden_date, request,
                                                                   ex.turn + 1)]

    def _perform_again(self, ex: Exchange) -> Callable[[Exchange], None]:
        """What sends `ex`'s request again: prompt ids, or the call that made its observation."""
        if ex.variant == "prompt-ids":
            return self._ask_prompt_ids

        def perform(target: Exchange) -> None:
            target.observation = self._call_again(target)

        return perform

    def _call_again(self, ex: Exchange) -> Observation:
        if ex.variant not in API_VARIANTS:  # greedy-logprobs, sampling: chat
            return self.provider.chat(ex.request)
        body = HarmonyPrompt(**ex.request) if API_VARIANTS[ex.variant].api == "completions" else ex.request
        return self._send(ex.variant, body)

def _next_request(case: Case, request: dict, ex: Exchange) -> dict | None:
    """The tool loop's next Chat request after `ex` (None: the loop ends), reasoning sent back in the field the
    host returned it in, as a client does."""
    obs = ex.observation
    if not obs.ok or not obs.tool_calls:
        return None
    return case.follow_up(request, obs.reasoning, obs.tool_calls, reasoning_field(obs.reasoning_fields))


def _failure(ex: Exchange) -> Failure | None:
    return ex.failure or (ex.observation.failure if ex.observation is not None else None)


def _resendable(ex: Exchange) -> bool:
    """Whether the re-send pass sends `ex` again: a send answered with an error status or no service, not a
    teacher-forced score; a first send always, a re-send while its sends so far are not the provider's answer
    (`observation.deterministic`) and it has been sent again fewer than `RESEND_ROUNDS` times."""
    failure = _failure(ex)
    if ex.variant == "score" or failure is None or failure.kind not in ("http_status", "unavailable"):
        return False
    if not ex.earlier:
        return True
    return len(ex.earlier) < RESEND_ROUNDS and not deterministic([send.failure for send in ex.earlier] + [failure])


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
        from verifier.reference.checkpoints import checkpoint_sha256
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


def builtin_dtype(quirks: list[str]) -> str:
    """The built-in provider computes in bf16, an honest engine other than golden's fp32 one, so the demo shows
    real drift inside the boundary; the `fp32` quirk serves golden's own engine (drift zero up to golden's
    1e-6 rounding)."""
    return "fp32" if "fp32" in quirks else "bf16"


def _start_builtin(config: RunConfig, stack: ExitStack) -> tuple[str, str]:
    from verifier.serve import start_background
    from verifier.testmodel.compact import default_checkpoint

    server = start_background(default_checkpoint(), BUILTIN_MODEL, config.faults, dtype=builtin_dtype(config.quirks),
                              quirks=config.quirks, surfaces=config.surfaces)
    stack.callback(server.stop)
    return server.url, BUILTIN_MODEL


@dataclass
class Prepared:
    """A run checked and loaded, before anything is sent."""

    config: RunConfig
    manifest: RunManifest | None
    """The manifest of the run being resumed (None: a new run)."""
    method: str | None
    """Drift method (None: no drift requests)."""
    suites: list[Suite]
    goldens: list[GoldenFile]
    calibration: Calibration | None


def prepare(config: RunConfig, resume: Path | None = None) -> Prepared:
    """Everything that can be refused before a request is sent: settings, suites, golden records."""
    manifest = None
    if resume is not None:
        config, manifest = resume_config(resume, config)
    _validate(config)
    method = drift_method(config.apis, config.drift_method)
    suites = [load_suite(name).for_profile(config.profile) for name in config.suites]
    if missing := unsent(suites, config.apis):
        raise UsageError(f"--api {' '.join(missing)}: no suite of this run sends it (suites: {', '.join(config.suites)})")
    root = config.golden or golden_dir() / DEFAULT_GOLDEN
    goldens = [load_golden(s, root) for s in suites]
    _check_one_checkpoint(goldens, root, config.base_url is None)
    cal = calibration.load(root)
    if cal is not None and config.score_all:
        cal = cal.model_copy(update={"pass_after_positions": None})
    return Prepared(config=config, manifest=manifest, method=method, suites=suites, goldens=goldens, calibration=cal)


def _connect(config: RunConfig, stack: ExitStack) -> Provider:
    """The provider of a run (the built-in one started if no --base-url), known to answer `/models`."""
    if config.base_url is None:
        base_url, model = _start_builtin(config, stack)
    else:
        base_url, model = config.base_url, config.model
    provider = Provider(base_url, model, config.api_key, config.timeout, retry=config.retry)
    stack.callback(provider.close)
    provider.models()  # fails fast, with a clear cause, if this is not an OpenAI-compatible endpoint
    return provider


def capabilities_of(provider: Provider, run_dir: Path | None = None) -> tuple[Capabilities, Cost]:
    """What the provider offers: as the run in `run_dir` found it (so a resumed run decides alike), else probed;
    and what finding it cost now (the probe's requests and reported tokens; nothing when read from `run_dir`)."""
    path = Path(run_dir) / CAPABILITIES_FILE if run_dir is not None else None
    if path is not None and path.exists():
        try:
            caps = Capabilities.model_validate_json(path.read_text())
        except ValueError as exc:
            raise UsageError(f"{path} is not a capabilities file of this verifier ({exc.__class__.__name__})") from None
        spent = Cost()
    else:
        caps = probe(provider)
        spent = Cost(requests=caps.requests, prompt_tokens=caps.prompt_tokens, completion_tokens=caps.completion_tokens)
    provider.capabilities = caps
    if caps.prompt_ids_sources and provider.prompt_ids_mode is None:
        provider.prompt_ids_mode = caps.prompt_ids_sources[0]
    return caps, spent


class SuitePlan(BaseModel):
    """What a suite would send to this endpoint: `probe` and `run --dry-run` print it."""

    suite: str
    requests: int
    """Requests at most (the drift test may stop early), without the probe's and without re-sends of failed
    requests (up to `RESEND_ROUNDS` each)."""
    tokens: int
    """Prompt and completion tokens, estimated from the golden records."""
    drift_method: str | None = None
    """The drift method tried first (None: no drift requests)."""
    unsupported: list[str] = Field(default_factory=list)
    """What the suite would have sent that the endpoint does not offer (skipped)."""


def _turn_tokens(turn) -> int:
    return len(turn.prompt_token_ids) + len(turn.completion_token_ids)


def plan_suite(suite: Suite, golden: GoldenFile, allowed: list[str] | None, caps: Capabilities | None,
               method: str | None) -> SuitePlan:
    """The requests and tokens a suite would spend on an endpoint with `caps`."""
    plan = SuitePlan(suite=suite.name, requests=0, tokens=0)
    for case, _ in _tasks(suite, allowed, caps):
        turns = golden.record(case.id).turns
        plan.requests += len(turns)
        plan.tokens += sum(_turn_tokens(t) for t in turns)
    if _wants_prompt_ids(suite, allowed) and (caps is None or caps.prompt_ids is not False):
        plan.requests += len(suite.cases)
        plan.tokens += sum(len(golden.record(c.id).turns[0].prompt_token_ids) + 1 for c in suite.cases)
    if method is not None and _wants_drift(suite, allowed):
        order = drift_order(caps, method)[0]
        plan.drift_method = order[0] if order else None
        _plan_drift(plan, suite, golden)
    plan.unsupported = sorted({o.message.removeprefix(UNSUPPORTED)
                               for r in unsupported_results(suite, allowed, caps, method) for o in r.outcomes})
    return plan


def _plan_drift(plan: SuitePlan, suite: Suite, golden: GoldenFile) -> None:
    firsts = [golden.record(c.id).turns[0] for c in suite.cases]
    if plan.drift_method == "teacher":
        turns = [t for c in suite.cases for t in golden.record(c.id).turns]
        plan.requests += len(turns)
        plan.tokens += sum(_turn_tokens(t) for t in turns)
    elif plan.drift_method == "greedy":
        plan.requests += len(firsts)
        plan.tokens += sum(_turn_tokens(t) + 4 for t in firsts)
    elif plan.drift_method == "sampling":
        drawn = sampling_plan(suite, golden)
        plan.requests += sum(count for _, _, count in drawn)
        plan.tokens += sum(count * (_turn_tokens(t) + 4) for _, t, count in drawn)


class Survey(BaseModel):
    """What `probe` and `run --dry-run` found: the endpoint's capabilities and what each suite would spend."""

    base_url: str
    model: str
    capabilities: Capabilities
    plans: list[SuitePlan]


def survey(config: RunConfig, resume: Path | None = None) -> Survey:
    """Probe the endpoint and plan the run; sends nothing but the probe (and `/models`)."""
    prepared = prepare(config, resume)
    with ExitStack() as stack:
        provider = _connect(prepared.config, stack)
        caps, _ = capabilities_of(provider, resume)
    plans = [plan_suite(s, g, prepared.config.apis, caps, prepared.method)
             for s, g in zip(prepared.suites, prepared.goldens)]
    return Survey(base_url=provider.base_url, model=provider.model, capabilities=caps, plans=plans)


def _run_dir(prepared: Prepared, resume: Path | None, caps: Capabilities) -> tuple[RunManifest, Path]:
    """The run directory: made for a new run (run.json, capabilities.json), or the one resumed."""
    if prepared.manifest is not None:
        run_dir = Path(resume)
        if not (run_dir / CAPABILITIES_FILE).exists():
            _write_capabilities(caps, run_dir, prepared.config.api_key)
        return prepared.manifest, run_dir
    config = prepared.config
    manifest = RunManifest(run_id=new_run_id(), created=_now(), verifier_version=__version__, config=config)
    run_dir = config.out / manifest.run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    (run_dir / "run.json").write_text(manifest.model_dump_json(indent=2))
    _write_capabilities(caps, run_dir, config.api_key)
    return manifest, run_dir


def _write_capabilities(caps: Capabilities, run_dir: Path, secret: str | None) -> None:
    """capabilities.json; its notes quote the provider's error messages, which may echo the key."""
    (run_dir / CAPABILITIES_FILE).write_text(_redacted(caps.model_dump_json(indent=2), secret))


def execute(config: RunConfig, progress: Progress | None = None, resume: Path | None = None,
            budget: Budget | None = None) -> tuple[RunResult, Path]:
    """Run the verification (or finish the run in `resume`); returns the result and its run directory.

    Everything that can be refused is checked before a run directory is made, so bad input leaves
    earlier results as they were. The endpoint is probed first (`verifier.providers.probe`); what it does
    not offer is not sent, and its checks skip with the reason. At `budget` the run stops (`BudgetReached`),
    resumable like an interrupted one.
    """
    from verifier.report import write_reports
    from verifier.report.evidence import collect as collect_evidence

    prepared = prepare(config, resume)
    config, method, suites, goldens, cal = (prepared.config, prepared.method, prepared.suites, prepared.goldens,
                                            prepared.calibration)
    started = time.monotonic()
    progress = progress or Progress()
    with ExitStack() as stack:
        provider = _connect(config, stack)
        caps, probed = capabilities_of(provider, resume)
        manifest, run_dir = _run_dir(prepared, resume, caps)
        replay = Replay(journal.read(run_dir / journal.FILE))
        log = Journal(run_dir / journal.FILE, config.api_key)
        stack.callback(log.close)
        runner = Runner(provider, log, progress, replay, config.concurrency, caps, budget, spent=probed)
        progress.start(sum(work_units(s, config.apis, caps) for s in suites))
        results = []
        try:
            for suite, golden in zip(suites, goldens):
                exchanges = runner.run_suite(suite, golden, config.apis, cal, method)
                results += evaluate(suite, golden, exchanges, cal) + unsupported_results(suite, config.apis, caps,
                                                                                         method)
        except KeyboardInterrupt as interrupt:
            interrupt.run_dir = run_dir  # the CLI says how to resume
            raise
        except BudgetReached as stop:
            raise BudgetReached(f"budget reached: {stop}; the run stopped and is resumable: "
                                f"gpt-oss-verify run --resume {run_dir}") from None
    checks = merge(results)
    result = RunResult(
        run_id=manifest.run_id, created=manifest.created, verifier_version=__version__,
        provider=ProviderInfo(base_url=provider.base_url, model=provider.model, builtin=config.base_url is None,
                              faults=sorted(config.faults), variants=sorted(config.quirks),
                              score_mode=provider.score_mode, prompt_ids_mode=provider.prompt_ids_mode),
        suites=[SuiteInfo(name=s.name, version=s.version, sha256=s.sha256, golden=g.provenance)
                for s, g in zip(suites, goldens)],
        apis=sorted({ex.variant for ex in runner.exchanges}),
        verdict=run_verdict(checks), checks=checks, cost=runner.cost,
        duration_s=round(time.monotonic() - started, 2),
        evidence=collect_evidence(runner.exchanges, {s.name: g for s, g in zip(suites, goldens)}), config=config,
        capabilities=caps,
    )
    if resume is not None:
        progress.note(f"resumed: {replay.replayed} exchanges replayed from the journal, "
                      f"{len(runner.exchanges) - replay.replayed} sent")
    write_result(result, run_dir, config.api_key)
    write_reports(result, run_dir)
    return result, run_dir


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


def _redacted(text: str, secret: str | None) -> str:
    return text.replace(secret, "[REDACTED]") if secret else text


def write_result(result: RunResult, run_dir: Path, secret: str | None) -> None:
    text = _redacted(result.model_dump_json(indent=2), secret)
    tmp = run_dir / "result.json.tmp"
    tmp.write_text(text)
    os.replace(tmp, run_dir / "result.json")
