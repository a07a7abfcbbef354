"""`gpt-oss-verify score RUN_DIR`: the reference scores the provider's own output, offline, after the run.

A run journals every answer. This module reads them back, re-tokenises each usable answer (its reasoning and
answer text; tool calls only as context) into its Harmony completion after the canonical rendering of its
request, has the reference score the sequence, and judges the scores with `verifier.drift.provider_tokens` as
the check `drift.reference_scored`. Nothing here needs the endpoint's log-probabilities, so it is the drift
evidence of hosts that offer none, and the reference may live on another machine than the run (a GPU for real
checkpoints): copy the run directory there and score it.

Which answers are scored (`scoreable`): first turns (a later turn's prompt holds the provider's own earlier
answers, rendered as the provider rendered them: a rendering defect there is `rendering.*`'s to report, not
drift), on Chat and Responses (streamed or not) and the drift evidence kinds with text (greedy logprobs,
samples), at temperature 0 (greedy) or 1 (sampled, no top_p), without a grammar (`response_format`), a forced
tool choice or other sampling parameters, all of which choose tokens the model did not; with the reasoning
returned in full (a host that hides or summarises it leaves the answer's true prefix unknown) and no Harmony
markup leaked into the text (a parser defect, `parsing.*`'s). The answer is re-tokenised in the header form the
model itself writes (`harmony.generated_tokens`, which reproduces every golden completion token for token);
scored are the positions inside message bodies (content and closing token), never headers. The same greedy
answer on several APIs is scored once; every sample counts.

The date: a host renders its own date into the system message, and a day's difference moves a hesitant model's
choices by more than honest rounding (the calibration's date-shifted engines). Greedy answers are scored after
the provider's UTC date and its neighbours (`checks.rendering.provider_dates`: hosts render local time) and
judged at the date with the fewest departures; samples at the offset most greedy answers preferred (UTC when
none did, or the run has no greedy answers).

Resumable: each scored answer is appended to `scored.jsonl` in the run directory as its batch completes; a
second invocation scores only what is missing (lines of another reference, checkpoint or dtype, are not
reused). When done, `result.json`, `report.html` and `junit.xml` are rewritten with the check added (or
replaced); a later `run --resume` rewrites result.json without it (score again).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from verifier import harmony, journal
from verifier.checks import ordered, summarise
from verifier.checks.drift import reference_scored
from verifier.checks.rendering import provider_dates as dates_around
from verifier.config import RunConfig
from verifier.drift.provider_tokens import TokenScores, departure_margin, departures
from verifier.errors import UsageError, VerifierError
from verifier.exchange import Exchange
from verifier.report import write_reports
from verifier.result import CheckResult, RunResult, aggregate, load, run_verdict
from verifier.runner import prepare, write_result

FILE = "scored.jsonl"
CHECK_ID = "drift.reference_scored"
TEXT_VARIANTS = ("chat", "chat-stream", "responses", "responses-stream", "greedy-logprobs", "sampling")
"""Exchanges whose answers come back as text and tool calls (Completions answers are raw Harmony text, left out)."""
NOTHING_TO_SCORE = "no answer of this run is scoreable: first turns of Chat or Responses at temperature 0 or 1"
SAMPLER_KEYS = frozenset({"stop", "logit_bias", "frequency_penalty", "presence_penalty", "repetition_penalty",
                          "top_k", "min_p", "bad_words"})
"""Request parameters that change which tokens are chosen: an answer sent with one is not the model's free choice."""
BATCH = 8
"""Answers scored per forward pass (and appended to `scored.jsonl` together)."""


@dataclass
class Answer:
    """One provider answer, ready for the reference: the token sequence and which positions to score."""

    exchange: Exchange
    sampled: bool
    date: str
    """The conversation date the prompt is rendered with."""
    tokens: list[int]
    positions: list[int]
    """Indices into `tokens` of the answer's content tokens."""

    @property
    def label(self) -> str:
        ex = self.exchange
        return f"{ex.suite}/{ex.case_id}/{ex.variant}#{ex.turn}"


def sampling_mode(request: dict) -> bool | None:
    """True for a sampled request (temperature 1, no nucleus), False for greedy (temperature 0), None otherwise
    (another temperature or top_p: the reference would have to be reshaped to the provider's sampler)."""
    temperature = request.get("temperature", 1.0)
    top_p = request.get("top_p", 1.0)
    if temperature == 0:
        return False
    return True if temperature == 1 and top_p in (None, 1) else None


def scoreable(ex: Exchange) -> bool | None:
    """Whether (and how: see `sampling_mode`) an exchange's answer is the model's own free choice to score."""
    obs = ex.observation
    request = ex.chat_request
    if ex.variant not in TEXT_VARIANTS or ex.turn != 1 or obs is None or not obs.ok:
        return None
    if request.get("response_format") or request.get("tool_choice") not in (None, "auto"):
        return None
    if set(ex.request) & SAMPLER_KEYS:
        return None
    if not obs.reasoning or any("summary" in name for name in obs.reasoning_fields):
        return None  # hidden or summarised reasoning: the answer's prefix is unknown
    if harmony.leaked_markers(obs.reasoning) or harmony.leaked_markers(obs.content):
        return None
    return sampling_mode(ex.request)  # the body sent (a sample's chat_request is golden's greedy one)


def provider_dates(ex: Exchange) -> list[str]:
    """The dates the provider may have rendered its prompt with: the UTC date of its `created` stamp (else of when
    the request was sent), then the day before and after (hosts render local time)."""
    return dates_around((ex.observation.created if ex.observation else None) or ex.started)


def answer_of(ex: Exchange, sampled: bool, date: str) -> Answer:
    """The request rendered canonically at `date`, then the provider's answer as the model writes it
    (`harmony.generated_tokens`; its last message closed unless the answer ran out of tokens)."""
    obs = ex.observation
    assert obs is not None
    prompt = harmony.render_chat(ex.chat_request, date)
    completion, positions = harmony.generated_tokens(obs.reasoning, obs.content or None,
                                                     [(c.name, c.arguments) for c in obs.tool_calls],
                                                     closed=obs.finish_reason != "length")
    return Answer(ex, sampled, date, prompt + completion, [len(prompt) + i for i in positions])


def answers(exchanges: list[Exchange], offset: int | None = None) -> list[Answer]:
    """The scoreable answers of a journal: greedy ones (offset None) at each candidate date, each distinct greedy
    answer once (the same answer on several APIs is one piece of evidence); or the samples, at the candidate date of
    index `offset` (see `provider_dates`), every one (each is its own draw: dropping repeats would bias the sampled
    test toward rarer answers). Answers with nothing to score (a bare tool call) are left out."""
    seen: set[tuple[int, ...]] = set()
    out = []
    for ex in exchanges:
        mode = scoreable(ex)
        if mode is None or mode != (offset is not None):
            continue
        for date in provider_dates(ex) if offset is None else [provider_dates(ex)[offset]]:
            answer = answer_of(ex, mode, date)
            if not answer.positions or (not mode and tuple(answer.tokens) in seen):
                continue
            seen.add(tuple(answer.tokens))
            out.append(answer)
    return out


def best_dates(greedy: list[TokenScores], margin: float) -> dict[str, TokenScores]:
    """Per greedy exchange, its scores at the candidate date with the fewest departures (the earliest candidate,
    the UTC date, on a tie)."""
    by_key: dict[str, list[TokenScores]] = {}
    for seq in greedy:
        by_key.setdefault(seq.key, []).append(seq)
    return {key: min(candidates, key=lambda seq: len(departures([seq], margin)))  # min keeps the first on a tie
            for key, candidates in by_key.items()}


def sample_offset(chosen: dict[str, TokenScores], by_key: dict[str, Exchange]) -> int:
    """The candidate-date index (see `provider_dates`) of the samples: the one most greedy answers strictly preferred
    (they depart at the UTC date and not at it: the host renders local time), else 0, the UTC date."""
    votes = Counter(index for key, seq in chosen.items() if (index := provider_dates(by_key[key]).index(seq.date)))
    return votes.most_common(1)[0][0] if votes else 0


def token_scores(answer: Answer, rows, start: int, scorer: str) -> TokenScores:
    """`TokenScores` of an answer's scored positions, from the reference's scores of its sequence from `start` on
    (`Engine.score_batch`, with moments)."""
    return scores_at(answer.exchange.key, answer.label, answer.sampled, answer.positions, rows, start,
                     date=answer.date, scorer=scorer)


def scores_at(key: str, label: str, sampled: bool, positions: list[int], rows, start: int, **fields) -> TokenScores:
    """`TokenScores` of `positions` of a sequence whose scores from `start` on are `rows`."""
    out = TokenScores(key=key, label=label, sampled=sampled, **fields)
    for position in positions:
        s = rows[position - start]
        out.margin.append(max(s.top.logprobs[0] - s.logprob, 0.0))
        out.logprob.append(s.logprob)
        out.entropy.append(s.entropy)
        out.variance.append(s.logprob_variance)
        out.mid_rank.append(s.mid_rank)
        out.cube_sum.append(s.cube_sum)
        out.tokens.append(harmony.token_text(s.token))
    return out


def read_scores(run_dir: Path, scorer: str) -> dict[tuple[str, str], TokenScores]:
    """The answers `scored.jsonl` holds from this `scorer`, by (exchange key, date); a torn last line is ignored."""
    path = Path(run_dir) / FILE
    out = {}
    for number, line in enumerate(journal.complete_lines(path), 1):
        try:
            seq = TokenScores.model_validate_json(line)
        except ValidationError:
            raise VerifierError(f"{path}: line {number} is not a scored answer; delete the file to score again") from None
        if seq.scorer == scorer:
            out[(seq.key, seq.date)] = seq
    return out


def score_answers(todo: list[Answer], engine, scorer: str, run_dir: Path) -> Iterator[TokenScores]:
    """Score `todo` with the reference `engine` (from each answer's first scored position on, not its prompt),
    appending each result to `scored.jsonl` as its batch completes."""
    path = Path(run_dir) / FILE
    journal.drop_torn_tail(path)
    with open(path, "a", encoding="utf-8") as fh:
        for first in range(0, len(todo), BATCH):
            batch = todo[first : first + BATCH]
            starts = [a.positions[0] for a in batch]
            scored = engine.score_batch([(a.tokens, start) for a, start in zip(batch, starts)], k=1, moments=True)
            for answer, rows, start in zip(batch, scored, starts):
                result = token_scores(answer, rows, start, scorer)
                fh.write(result.model_dump_json() + "\n")
                yield result
            fh.flush()
            os.fsync(fh.fileno())


def reference_checkpoint(goldens, checkpoint: Path | None) -> Path:
    """The checkpoint golden came from: `checkpoint` if given (refused unless its hash is golden's), else the
    conformance checkpoint when golden is its."""
    from verifier.reference.checkpoints import checkpoint_sha256
    from verifier.testmodel.compact import default_checkpoint

    name, sha = goldens[0].provenance.checkpoint, goldens[0].provenance.checkpoint_sha256
    if checkpoint is None:
        candidate = default_checkpoint()
        if checkpoint_sha256(candidate) != sha:
            raise UsageError(f"the run's golden is for checkpoint {name!r}: pass --checkpoint DIR (that checkpoint)")
        return candidate
    if not Path(checkpoint).is_dir():
        raise UsageError(f"--checkpoint {checkpoint}: not a directory")
    if checkpoint_sha256(Path(checkpoint)) != sha:
        raise UsageError(f"--checkpoint {checkpoint} is not the checkpoint the run's golden came from ({name}, "
                         f"{sha[:12]})")
    return Path(checkpoint)


def score_run(run_dir: Path, checkpoint: Path | None = None, dtype: str | None = None, device: str = "cpu",
              progress=None) -> tuple[RunResult, CheckResult]:
    """Score a finished run's answers with the reference (resuming `scored.jsonl`), then rewrite its result and
    reports with `drift.reference_scored`. `dtype`: the reference's (default: golden's). `progress(n)`: after
    each scored answer."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").exists():
        raise UsageError(f"{run_dir} is not a run directory (no run.json)")
    if not (run_dir / "result.json").exists():
        raise UsageError(f"{run_dir} has no result.json: finish the run first (gpt-oss-verify run --resume {run_dir})")
    result = load(run_dir / "result.json")
    prepared = prepare(RunConfig(), resume=run_dir)
    if prepared.calibration is None:
        raise UsageError("the run's golden has no calibration.json, so this check has no flip margin; "
                         "run `gpt-oss-verify golden calibrate`")
    provenance = prepared.goldens[0].provenance
    dtype = dtype or provenance.dtype
    scorer = f"{provenance.checkpoint_sha256[:12]}/{dtype}"
    exchanges = journal.read(run_dir / journal.FILE)
    by_key = {ex.key: ex for ex in exchanges}
    done = read_scores(run_dir, scorer)
    reference = _Reference(prepared.goldens, checkpoint, dtype, device)
    margin = departure_margin(prepared.calibration)

    def scored(wanted: list[Answer]) -> list[TokenScores]:
        todo = [a for a in wanted if (a.exchange.key, a.date) not in done]
        for seq in score_answers(todo, reference.engine(), scorer, run_dir) if todo else []:
            done[(seq.key, seq.date)] = seq
            if progress is not None:
                progress(len(done))
        return [done[(a.exchange.key, a.date)] for a in wanted]

    greedy = best_dates(scored(answers(exchanges)), margin)
    samples = scored(answers(exchanges, sample_offset(greedy, by_key)))
    spec = next(s for s in ordered() if s.id == CHECK_ID)
    outcomes = reference_scored([*greedy.values(), *samples], by_key, prepared.calibration)
    verdict = aggregate(outcomes)
    check = CheckResult(id=spec.id, family=spec.family, title=spec.title, why=spec.why, source=spec.source,
                        compares=spec.compares, verdict=verdict, outcomes=outcomes,
                        summary=summarise(outcomes, verdict) if outcomes else NOTHING_TO_SCORE)
    order = [s.id for s in ordered()]
    checks = sorted([c for c in result.checks if c.id != CHECK_ID] + [check], key=lambda c: order.index(c.id))
    result = result.model_copy(update={"checks": checks, "verdict": run_verdict(checks)})
    write_result(result, run_dir, None)
    write_reports(result, run_dir)
    return result, check


class _Reference:
    """The reference engine, loaded (and its checkpoint checked against golden's) only once something needs scoring."""

    def __init__(self, goldens, checkpoint: Path | None, dtype: str, device: str):
        self.args = (goldens, checkpoint, dtype, device)
        self.loaded = None

    def engine(self):
        from verifier.reference.engine import Engine  # torch: loaded only when there is something to score

        if self.loaded is None:
            goldens, checkpoint, dtype, device = self.args
            self.loaded = Engine(reference_checkpoint(goldens, checkpoint), dtype, device)
        return self.loaded
