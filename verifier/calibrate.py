"""The `golden calibrate` workflow: score golden with honest engines, fit the drift boundaries, measure
detection power against faulty engines, and write `calibration.json` (and the honest data) into the
golden directory.

The statistics are `verifier.drift.calibration`, which takes plain values; this module builds the
scorers they need from local reference engines and OpenAI-compatible endpoints. The CLI
(`gpt-oss-verify golden calibrate`), `scripts/calibrate_conformance.py` and
`benchmarks/detection.py` all run it from here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from verifier import harmony
from verifier.checks.rendering import provider_dates
from verifier.drift import calibration as cal
from verifier.drift.align import greedy_positions
from verifier.drift.calibration import Calibration, Drift, Scorer, Turns
from verifier.drift.provider_tokens import TokenScores
from verifier.errors import GoldenError, ProviderError, UsageError
from verifier.golden import GoldenTurn
from verifier.golden import load as load_golden
from verifier.harness.local import until_stop
from verifier.paths import REPO_ROOT
from verifier.providers import Provider
from verifier.reference import perturb
from verifier.reference.engine import Engine
from verifier.rescore import scores_at
from verifier.runner import greedy_request
from verifier.scores import PositionScore
from verifier.verdict import Detection

SCORE_TOP_K = cal.FULL_K
GREEDY_DTYPES = ("fp32", "bf16")
"""Reference dtypes whose date-shifted prompts are honest engines of the greedy calibration (besides
`Plan.greedy_endpoints`)."""


class Plan(BaseModel):
    """What to calibrate, against which honest engines, and which faults to measure detection of."""

    golden: Path
    """The golden directory to calibrate (its calibration.json and data files are written there)."""
    checkpoint: Path
    """Checkpoint of the local honest engines and of the perturbed (faulty) ones."""
    honest_dtypes: list[str] | None = None
    """Local reference dtypes counted as honest; None: bf16, unless endpoints are given."""
    device: str = "cpu"
    """Device of the local honest engines."""
    endpoints: dict[str, str] = Field(default_factory=dict)
    """Honest endpoints: base URL -> the engine's name in the calibration."""
    scorers: dict[str, Scorer] = Field(default_factory=dict)
    """Honest engines scored by a function of (tokens, start), for engines no endpoint teacher-forces (llama-server
    through one-token continuations, `llama_cpp.teacher_forcing`): the engine's name -> its scorer. Scored afresh
    (also with `saved`, replacing saved data of the same name)."""
    greedy_endpoints: dict[str, str] = Field(default_factory=dict)
    """Honest chat endpoints of the greedy calibration: base URL -> the engine's name in it. Their greedy chat
    logprobs on golden first turns, as a run asks for them, are scored afresh (also with `saved`, replacing saved
    data of the same name)."""
    model: str | None = None
    """Model name at the honest endpoints (teacher-forcing and greedy ones)."""
    power_against: list[str] = Field(default_factory=list)
    """Faults whose detection power to measure."""
    must_detect: list[str] = Field(default_factory=list)
    """Faults a passing run must have had the power to catch (sets `pass_after_positions`)."""
    simulations: int = 2000
    """Simulated honest runs per engine."""
    saved: bool = False
    """Reuse the honest drift saved by the last calibration instead of scoring again."""
    answers: bool = False
    """Measure honest engines' own greedy answers to golden's free first turns (`greedy_answers`, the departure margin
    of `drift.reference_scored`): the local reference in each honest dtype, each of `endpoints` through token-id
    completions (`endpoint_answerer`) and `answerers`. False: the last calibration's are kept (with `saved`), or
    there are none."""
    answerers: dict[str, Answerer] = Field(default_factory=dict)
    """Honest greedy engines of `answers` besides those, for engines no endpoint answers token-id prompts through
    `/v1/completions` (llama-server's native `/completion`, `llama_cpp.greedy_answerer`): the engine's name -> its
    answerer."""


    @model_validator(mode="after")
    def _answerers_answer(self) -> Plan:
        if self.answerers and not self.answers:
            raise ValueError("answerers are measured only with answers=True")
        return self


def engine_scorer(engine: Engine, k: int = SCORE_TOP_K) -> Scorer:
    """A scorer backed by a local reference engine (no HTTP)."""

    def score(tokens: list[int], start: int) -> list[PositionScore]:
        return [PositionScore(token_logprob=s.logprob, top=dict(zip(s.top.ids, s.top.logprobs)))
                for s in engine.score(tokens, start, k)]

    return score


def provider_scorer(provider: Provider, k: int = SCORE_TOP_K) -> Scorer:
    """A scorer backed by an endpoint's teacher forcing."""

    def score(tokens: list[int], start: int) -> list[PositionScore]:
        return provider.score(tokens, start, k, {}).positions

    return score


Honest = dict[int, dict[str, Drift]]
"""Honest drift by top-list length (`cal.FULL_K` and each of `cal.TRUNCATIONS`), then by engine."""


def _add(honest: Honest, name: str, by_k: cal.ByK) -> None:
    for k, drift in by_k.items():
        honest.setdefault(k, {})[name] = drift


def _local_dtypes(plan: Plan) -> list[str]:
    return plan.honest_dtypes if plan.honest_dtypes is not None else ([] if plan.endpoints else ["bf16"])


def honest_drift(turns: Turns, plan: Plan, local_only: bool = False) -> Honest:
    """Every honest engine's drift on the golden turns at every top-list length: local reference dtypes,
    then endpoints (not with `local_only`)."""
    honest: Honest = {}
    dtypes = _local_dtypes(plan) or (["bf16"] if local_only else [])
    for dtype in dtypes:
        _add(honest, f"reference-{dtype}", cal.collect_by_k(engine_scorer(Engine(plan.checkpoint, dtype, plan.device)),
                                                            turns))
    for url, label in ({} if local_only else plan.endpoints).items():
        provider = Provider(url, plan.model)
        _add(honest, label, cal.collect_by_k(provider_scorer(provider), turns))
        provider.close()
    return honest


def scored_drift(turns: Turns, plan: Plan) -> Honest:
    """The drift of `plan.scorers` on the golden turns, at every top-list length."""
    honest: Honest = {}
    for name, score in plan.scorers.items():
        _add(honest, name, cal.collect_by_k(score, turns))
    return honest


def _honest(plan: Plan, keys: list[str], name: str, score: Callable[[], Honest],
            fresh: Callable[[], Honest] = dict) -> Honest:
    """Honest drift at every top-list length: saved (`plan.saved`) where the data files have it, scored by
    `score` otherwise, and the engines `fresh` scores (always; each replaces a saved engine of its name);
    written back to the data files."""
    honest: Honest = {}
    if plan.saved:
        honest[cal.FULL_K] = _saved(plan.golden, keys, name)
        for k in cal.TRUNCATIONS:
            if (plan.golden / cal.data_file(name, k)).is_file():
                honest[k] = _saved(plan.golden, keys, cal.data_file(name, k))
    missing = [k for k in (cal.FULL_K, *cal.TRUNCATIONS) if k not in honest]
    if missing:
        scored = score()  # a saved calibration without truncations: the local honest engines measure them
        honest.update({k: scored[k] for k in missing})
    for k, engines in fresh().items():
        honest.setdefault(k, {}).update(engines)
    for k, drift in honest.items():
        cal.save_data(drift, keys, plan.golden, cal.data_file(name, k))
    return honest


def _names(honest: dict[str, Drift]) -> str:
    return ", ".join(sorted(honest))


def _unscored(honest: dict[str, Drift], keys: list[str]) -> str:
    """The turns an engine has no positions of (an endpoint's turns rendered unlike the reference), for a source."""
    empty = {name: [key for key, turn in zip(keys, turns) if not turn] for name, turns in sorted(honest.items())}
    return "".join(f"; no positions from {name} on {', '.join(found)}" for name, found in empty.items() if found)


def with_truncations(full: Calibration, honest: Honest, source: str, simulations: int) -> Calibration:
    """`full` with its calibrations at each truncated top-list length (`by_k`)."""
    by_k = {k: cal.truncated(full, honest[k], k, source.format(engines=_names(honest[k]), k=k), simulations)
            for k in cal.TRUNCATIONS}
    return full.model_copy(update={"by_k": by_k})


def detection_power(turns: Turns, checkpoint: Path, faults: list[str], calibration: Calibration
                    ) -> dict[str, Detection]:
    """Positions needed to flag each local perturbation (checkpoint and numeric faults of the reference)
    at `calibration`'s top-list length."""
    return {fault: by_k[calibration.top_k] for fault, by_k in
            detection_power_by_k(turns, checkpoint, faults, calibration).items()}


def detection_power_by_k(turns: Turns, checkpoint: Path, faults: list[str], calibration: Calibration
                         ) -> dict[str, dict[int, Detection]]:
    """Per fault, detection power at the full top list and at each truncation `calibration` has."""
    return {fault: detect(fault_drift(turns, checkpoint, fault, calibration.flip_margin), calibration)
            for fault in faults}


def fault_drift(turns: Turns, checkpoint: Path, fault: str, flip_margin: float) -> cal.ByK:
    """A local perturbation's drift on the golden turns at every top-list length (collected with `flip_margin`)."""
    return cal.collect_by_k(engine_scorer(perturb.faulty_engine(checkpoint, fault)), turns, flip_margin)


def mean_kl(engine: Engine, reference: Engine, items: list[tuple[list[int], list[int]]]) -> float:
    """KL(engine || reference) over the full vocabulary, per position, averaged: the information a fault leaves in
    each position (what a provider's own sampled tokens carry; the `truncated-kl` drift statistic is the other way
    round, golden's top-K against the provider's), against which the positions a test needs can be read. `items`:
    (tokens, indices p of tokens whose next-token distribution, given tokens[:p], is compared)."""
    total, count = 0.0, 0
    for tokens, positions in items:
        if positions:
            for mine, theirs in zip(engine.distributions(tokens, positions), reference.distributions(tokens, positions),
                                    strict=True):
                total += float((mine.exp() * (mine - theirs)).sum())
            count += len(positions)
    return total / count if count else 0.0


def golden_items(turns: Turns) -> list[tuple[list[int], list[int]]]:
    """Every golden turn as `mean_kl` takes it: prompt and completion, the completion's positions."""
    return [(t.prompt_token_ids + t.completion_token_ids,
             list(range(len(t.prompt_token_ids), len(t.prompt_token_ids) + len(t.completion_token_ids))))
            for _, t in turns]


Answerer = Callable[[list[int], int], list[int]]
"""A greedy engine: (prompt token ids, token budget) -> the tokens it generated after the prompt, its stop included
(`local_answerer`, `endpoint_answerer`, `llama_cpp.greedy_answerer`)."""
ANSWER_SLACK = 4
"""Tokens an answer may run past golden's length (as a run asks: `Runner.sampling`, `greedy_request`)."""
ANSWER_DATE_SHIFTS = (0, 30)
"""Days by which the greedy answers' prompts move golden's date: golden's own, and a month on. A host renders its own
date, answers after that prompt, and `verifier.rescore` scores the answer after it; a shifted prompt leads an honest
engine down other paths, past other near-ties, than golden's. A shifted engine is named `cal.DATE_SHIFTED`."""


def answer_budget(turn: GoldenTurn) -> int:
    """Tokens an honest answer may take: the request's own `max_tokens`, as a host's answer to the case may (golden's
    length + `ANSWER_SLACK` where the request sets none, as a run's greedy and sampled requests ask)."""
    return turn.request.get("max_tokens") or len(turn.completion_token_ids) + ANSWER_SLACK


def local_answerer(engine: Engine) -> Answerer:
    def answer(prompt: list[int], budget: int) -> list[int]:
        return engine.generate(prompt, budget, harmony.ASSISTANT_STOPS).tokens
    return answer


def endpoint_answerer(provider: Provider) -> Answerer:
    """An honest endpoint's greedy answers to token-id prompts, as a run's raw-Harmony completions ask for them
    (`Provider.completions_harmony`). An endpoint that returns no tokens is a `ProviderError`."""
    def answer(prompt: list[int], budget: int) -> list[int]:
        obs = provider.completions_harmony(prompt, budget)
        if not obs.ok or not obs.token_ids:
            why = obs.failure.message if obs.failure else "no tokens in the answer"
            raise ProviderError(f"{provider.base_url}: a greedy answer for the calibration failed: {why}")
        return until_stop(obs.token_ids, harmony.ASSISTANT_STOPS)
    return answer


def free_first_turns(turns: Turns) -> Turns:
    """First turns whose completion is the model's own free choice (no response format, no forced tool): what
    `verifier.rescore` scores of a host's answers."""
    return [(key, t) for key, t in cal.first_turns(turns)
            if not t.request.get("response_format") and t.request.get("tool_choice") in (None, "auto")]


def as_hosted(generated: list[int]) -> tuple[list[int], list[int]]:
    """A completion as `verifier.rescore` sees a host's: parsed into reasoning, answer and tool calls, written back
    by `harmony.generated_tokens` (re-tokenised), with the positions it scores."""
    parsed = harmony.parse_completion(generated)
    calls = [(m.recipient.removeprefix("functions."), m.text) for m in parsed.tool_calls]
    preamble = [m.text for m in parsed.messages if m.channel == "commentary" and not m.recipient]
    answer = parsed.final if parsed.final is not None else ("".join(preamble) if calls and preamble else None)
    return harmony.generated_tokens(parsed.reasoning or None, answer, calls, closed=parsed.stop_token is not None)


def hosted_answer(prompt: list[int], generated: list[int]) -> tuple[list[int], list[int]]:
    """`generated` after `prompt`, as hosted (`as_hosted`): the whole token sequence and the indices it scores."""
    completion, positions = as_hosted(generated)
    return prompt + completion, [len(prompt) + i for i in positions]


def scored_answers(reference: Engine, items: list[tuple[str, list[int], list[int]]], sampled: bool
                   ) -> list[TokenScores]:
    """(key, tokens, scored indices) answers, scored by `reference` on their own prefix (those with nothing to score
    left out), as `verifier.rescore` scores a host's."""
    items = [item for item in items if item[2]]
    rows = reference.score_batch([(tokens, positions[0]) for _, tokens, positions in items], k=1, moments=True)
    return [scores_at(key, key, sampled, positions, row, positions[0])
            for (key, _, positions), row in zip(items, rows, strict=True)]


def answer_margins(name: str, answer: Answerer, turns: Turns, reference: Engine, date: str, days: int = 0
                   ) -> cal.AnswerMargins:
    """`answer`'s greedy answers to `turns` after their prompts at golden's `date` moved by `days` (`cal.shifted_prompt`),
    each with its request's budget (`answer_budget`), as hosted (`hosted_answer`) and scored by `reference` on their
    own prefix: the largest margin (reference top-1 log-probability minus the chosen token's) any of its tokens took."""
    prompts = [(key, cal.shifted_prompt(turn, days, date), answer_budget(turn)) for key, turn in turns]
    items = [(key, *hosted_answer(prompt, answer(prompt, budget))) for key, prompt, budget in prompts]
    scored = scored_answers(reference, items, False)
    margins = [m for seq in scored for m in seq.margin]
    return cal.AnswerMargins(name=cal.shifted_name(name, days), answers=len(scored), positions=len(margins),
                             largest_margin=round(max(margins, default=0.0), 6))


def greedy_answers(turns: Turns, plan: Plan, earlier: cal.GreedyAnswers | None = None) -> cal.GreedyAnswers:
    """Honest engines' greedy answers to golden's free first turns, after golden's date and the same date moved
    (`ANSWER_DATE_SHIFTS`), each up to its request's `max_tokens`, scored by the reference in golden's dtype (as
    `verifier.rescore` scores a host's): `plan.endpoints` and `plan.answerers` first (a bad endpoint fails before
    the slow local work), then the local reference in each honest dtype; the engines of `earlier` not measured again
    (vLLM, which `--saved` does not start) are kept from it."""
    first, date = free_first_turns(turns), cal.golden_date(plan.golden)
    dtype = golden_dtype(plan.golden)
    reference = Engine(plan.checkpoint, dtype, plan.device)
    providers = {label: Provider(url, plan.model or "") for url, label in plan.endpoints.items()}
    try:
        answerers = {label: endpoint_answerer(provider) for label, provider in providers.items()} | plan.answerers
        answerers |= {f"reference-{d}": local_answerer(Engine(plan.checkpoint, d, plan.device))
                      for d in _local_dtypes(plan)}
        engines = [answer_margins(name, answer, first, reference, date, days)
                   for name, answer in answerers.items() for days in ANSWER_DATE_SHIFTS]
    finally:
        for provider in providers.values():
            provider.close()
    kept = cal.kept_answers(engines, earlier)
    shifts = " and ".join(f"+{d}d" if d else "golden's date" for d in ANSWER_DATE_SHIFTS)
    source = (f"{len(first)} free first turns of {_shown(plan.golden)} at {shifts}, each up to its request's "
              f"max_tokens, as hosted, scored by the reference in {dtype}")
    if kept:
        source += f"; kept from the calibration before: {', '.join(e.name for e in kept)}"
    return cal.GreedyAnswers(source=source, engines=engines + kept)


def golden_dtype(golden: Path) -> str:
    """The dtype golden was computed in: the reference `verifier.rescore` scores a host's answers with."""
    return load_golden(cal.golden_files(golden)[0]).provenance.dtype


def saved_greedy_answers(plan: Plan) -> cal.GreedyAnswers | None:
    """With `plan.saved`, the greedy answers of the calibration being replaced (measured on the same golden files:
    `cal.load` refuses others), else None."""
    last = cal.load(plan.golden) if plan.saved else None
    return last.greedy_answers if last is not None else None


def add_greedy_answers(plan: Plan) -> Calibration:
    """Measure `greedy_answers` alone and write them into the golden directory's calibration, the rest unchanged
    (engines it does not measure again kept)."""
    _check(plan)
    calibration = cal.load(plan.golden)
    if calibration is None:
        raise GoldenError(f"no {cal.FILE} in {plan.golden}: calibrate first")
    calibration.greedy_answers = greedy_answers(cal.golden_turns(plan.golden), plan, calibration.greedy_answers)
    cal.save(calibration, plan.golden)
    return calibration


def detect(drift: cal.ByK, calibration: Calibration) -> dict[int, Detection]:
    lengths = [calibration.top_k, *calibration.by_k]
    return {k: cal.detection(drift[k], calibration.for_k(k)) for k in lengths}


def _record(calibration: Calibration, fault: str, found: dict[int, Detection]) -> None:
    for k, figures in found.items():
        calibration.for_k(k).detection[fault] = figures


def _pass_after(calibration: Calibration, must_detect: list[str]) -> None:
    """`pass_after_positions` of a calibration and each truncation: the positions by which every fault of
    `must_detect` is caught with 99% power (None, score everything, if one is not)."""
    for one in (calibration, *calibration.by_k.values()):
        needed = [one.detection[f].positions_for_99pct_power for f in must_detect if f in one.detection]
        if needed and len(needed) == len(must_detect) and all(n is not None for n in needed):
            one.pass_after_positions = max(n for n in needed if n is not None)


def renders_as_reference(provider: Provider, request: dict) -> bool:
    """Whether the endpoint's prompt ids for a chat request are the reference rendering with the endpoint's own
    date, as `rendering.prompt_ids` judges them (raises `TokenizeUnsupported` where it shows none)."""
    tokens, _ = provider.prompt_token_ids(request)
    return tokens in [harmony.render_chat(request, date) for date in provider_dates(None)]


def greedy_endpoint_drift(provider: Provider, first: Turns) -> cal.ByK:
    """An honest endpoint's drift as `drift.greedy_logprobs` measures it: each golden first turn's greedy chat
    request with top logprobs, as a run sends it, aligned with golden along their common prefix; at each
    top-list length. A turn the endpoint renders unlike the reference (beyond the date) has no positions: its
    drift is that rendering finding, not numeric noise. An answer without logprobs is an error."""
    aligned = []
    for key, turn in first:
        if not renders_as_reference(provider, turn.request):
            aligned.append((key, turn, []))
            continue
        obs = provider.chat(greedy_request(turn))
        if not obs.ok or not obs.logprobs:
            why = obs.failure.message if obs.failure else "no logprobs in the answer"
            raise ProviderError(f"{provider.base_url}: greedy logprobs of {key} for the calibration failed: {why}")
        golden, positions, _ = greedy_positions(turn, obs.logprobs, float("inf"), obs.reasoning_logprobs)
        aligned.append((key, golden, positions))
    return cal.aligned_by_k(aligned)


def greedy_endpoints_drift(first: Turns, plan: Plan) -> Honest:
    """Every greedy endpoint of `plan`'s drift on golden first turns, at every top-list length."""
    honest: Honest = {}
    for url, label in plan.greedy_endpoints.items():
        provider = Provider(url, plan.model or "")
        try:
            _add(honest, label, greedy_endpoint_drift(provider, first))
        finally:
            provider.close()
    return honest


def greedy_calibration(turns: Turns, plan: Plan) -> Calibration:
    """The calibration of the greedy-logprobs fallback: the reference (fp32 and bf16) scoring golden
    first turns after prompts rendered with other dates, as chat providers render their own, and the
    greedy chat logprobs of `plan.greedy_endpoints` on the same turns."""
    first, date = cal.first_turns(turns), cal.golden_date(plan.golden)
    keys = [key for key, _ in first]

    def score() -> Honest:
        honest: Honest = {}
        for dtype in GREEDY_DTYPES:
            scorer = engine_scorer(Engine(plan.checkpoint, dtype))
            for days in cal.DATE_SHIFTS:
                _add(honest, cal.shifted_name(f"reference-{dtype}", days), cal.date_shifted_by_k(scorer, first, days, date))
        return honest

    honest = _honest(plan, keys, cal.GREEDY_DATA_FILE, score, lambda: greedy_endpoints_drift(first, plan))
    greedy = cal.calibrate(honest[cal.FULL_K], f"honest date-shifted prompts and greedy chat endpoints "
                           f"[{_names(honest[cal.FULL_K])}] against first turns of the golden"
                           f"{_unscored(honest[cal.FULL_K], keys)}", simulations=plan.simulations,
                           min_widening=cal.GREEDY_MIN_WIDENING)
    greedy = with_truncations(greedy, honest, "honest date-shifted prompts and greedy chat endpoints [{engines}], "
                              "top-{k}, against first turns of the golden", plan.simulations)
    for fault in plan.must_detect:
        drift = cal.date_shifted_by_k(engine_scorer(perturb.faulty_engine(plan.checkpoint, fault)), first, 30, date)
        _record(greedy, fault, detect(drift, greedy))
    return greedy


def _check(plan: Plan) -> None:
    """Refuse a plan whose endpoints cannot be asked (no model name to ask them for)."""
    if plan.endpoints and not plan.model and not plan.saved:
        raise UsageError("--honest-model is required with --honest-url")
    if plan.greedy_endpoints and not plan.model:
        raise UsageError("--honest-model is required with --greedy-url")
    if plan.answers and plan.endpoints and not plan.model:
        raise UsageError("--honest-model is required with --honest-url for --greedy-answers")


def calibrate_golden(plan: Plan) -> Calibration:
    """Calibrate a golden directory; writes calibration.json and the honest data files there."""
    turns = cal.golden_turns(plan.golden)
    if not turns:
        raise GoldenError(f"no golden files in {plan.golden}")
    _check(plan)
    keys = [key for key, _ in turns]
    honest = _honest(plan, keys, cal.DATA_FILE, lambda: honest_drift(turns, plan, local_only=plan.saved),
                     lambda: scored_drift(turns, plan))
    full = honest[cal.FULL_K]
    result = cal.calibrate(full, f"honest engines [{_names(full)}] against {_shown(plan.golden)}",
                           simulations=plan.simulations)
    result = with_truncations(result, honest, f"honest engines [{{engines}}], top-{{k}}, against {_shown(plan.golden)}",
                              plan.simulations)
    result.golden_sha256 = cal.fingerprint(plan.golden)
    faults = sorted(set(plan.power_against) | set(plan.must_detect))
    for fault, found in detection_power_by_k(turns, plan.checkpoint, faults, result).items():
        _record(result, fault, found)
    _pass_after(result, plan.must_detect)
    result.greedy = greedy_calibration(turns, plan)
    saved = saved_greedy_answers(plan)
    result.greedy_answers = greedy_answers(turns, plan, saved) if plan.answers else saved
    cal.save(result, plan.golden)
    return result


def _saved(golden: Path, keys: list[str], name: str) -> dict[str, Drift]:
    try:
        return cal.load_data(golden, keys, name)
    except (OSError, ValueError, KeyError) as exc:
        raise GoldenError(f"no usable saved calibration data in {golden} ({exc}); calibrate without --saved") from None


def _shown(golden: Path) -> Path:
    """The golden directory as the calibration's source names it: relative to the repository if inside."""
    where = golden.resolve()
    return where.relative_to(REPO_ROOT) if where.is_relative_to(REPO_ROOT) else where


def answer_lines(answers: cal.GreedyAnswers | None) -> list[str]:
    """The greedy answers a calibration measured, a line per engine, and the departure margin they set."""
    if answers is None:
        return []
    lines = [f"greedy answers of {engine.name}: {engine.answers} answers, {engine.positions} positions, largest "
             f"margin {engine.largest_margin:.4f}" for engine in answers.engines]
    margin = answers.margin
    return lines + [f"greedy departure margin {margin:.3f} nats" if margin is not None else
                    f"greedy departure margin: none (answers of fewer than {cal.MIN_ANSWER_ENGINES} engines; the flip "
                    "margin applies)"]


def report_lines(result: Calibration) -> list[str]:
    """What a calibration found, a line per figure, as the CLI prints it."""
    lines = [f"flip margin {result.flip_margin:.3f} nats; median relative log-odds boundary "
             f"{[round(v, 5) for v in result.logodds_boundary.values]} at {result.logodds_boundary.positions}, "
             f"widened {result.widening:.3f}x (honest engines' step up {result.engine_spread:.3f})"]
    lines += [f"honest {engine.name}: median relative log-odds {engine.median_relative:.4f}, mean KL "
              f"{engine.mean_kl:.1e}, false-positive rate {engine.false_positive_rate:.3f}" for engine in result.honest]
    lines += [f"{name}: {figures.model_dump()}" for name, figures in result.detection.items()]
    if (greedy := result.greedy) is not None:
        detection = {name: figures.model_dump() for name, figures in greedy.detection.items()}
        lines.append(f"greedy fallback: boundary {[round(v, 5) for v in greedy.logodds_boundary.values]}, flip margin "
                     f"{greedy.flip_margin:.3f}; detection {detection}")
    for name, part in (("teacher forcing", result), ("greedy fallback", result.greedy)):
        for k, sub in sorted((part.by_k if part else {}).items()):
            caught = {fault: figures.positions_for_99pct_power for fault, figures in sub.detection.items()}
            lines.append(f"{name} top-{k}: boundary {[round(v, 5) for v in sub.logodds_boundary.values]}, pass after "
                         f"{sub.pass_after_positions}; positions for 99% power {caught}")
    return lines + answer_lines(result.greedy_answers)
