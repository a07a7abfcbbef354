"""`gpt-oss-verify score RUN_DIR`: the reference scores the provider's own output, offline, after the run.

A run journals every answer. This module reads them back, re-tokenises each usable answer (reasoning,
answer text, tool-call arguments) into its Harmony completion after the canonical rendering of its request
(at the provider's own date), has the reference score the whole sequence, and judges the scores with
`verifier.drift.provider_tokens` as the check `drift.reference_scored`. Nothing here needs the endpoint's
log-probabilities, so it is the drift evidence of hosts that offer none, and the reference may live on
another machine than the run (a GPU for real checkpoints): copy the run directory there and score it.

Which answers are scored (`scoreable`): first turns (a later turn's prompt holds the provider's own earlier
answers, rendered as the provider rendered them: a rendering defect there is `rendering.*`'s to report, not
drift), on Chat and Responses (streamed or not) and the drift evidence kinds with text (greedy logprobs,
samples), at temperature 0 (greedy) or 1 (sampled, no top_p), without a grammar (`response_format`) or a
forced tool choice, both of which choose tokens the model did not. The answer is re-tokenised in the header form
the model itself writes (`harmony.generated_tokens`, which reproduces every golden completion token for token);
only content tokens are scored (headers are format, which the rendering and parsing checks judge). Identical sequences (the same
greedy answer on several APIs) are scored once.

Resumable: each scored answer is appended to `scored.jsonl` in the run directory as it completes; a
second invocation scores only what is missing. When done, `result.json`, `report.html` and `junit.xml`
are rewritten with the check added (or replaced).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from verifier import harmony, journal
from verifier.checks import ordered, summarise
from verifier.checks.drift import reference_scored
from verifier.config import RunConfig
from verifier.drift.provider_tokens import TokenScores
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
BATCH = 8
"""Answers scored per forward pass (and appended to `scored.jsonl` together)."""


@dataclass
class Answer:
    """One provider answer, ready for the reference: the token sequence and which positions to score."""

    exchange: Exchange
    sampled: bool
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
    if not (obs.reasoning or obs.content or obs.tool_calls):
        return None
    return sampling_mode(ex.request)  # the body sent (a sample's chat_request is golden's greedy one)


def provider_date(ex: Exchange) -> str:
    """The UTC date the provider rendered its prompt with: its `created` stamp, else when the request was sent."""
    stamp = (ex.observation.created if ex.observation else None) or ex.started
    when = datetime.datetime.fromtimestamp(stamp, datetime.UTC) if stamp else datetime.datetime.now(datetime.UTC)
    return when.date().isoformat()


def answer_of(ex: Exchange, sampled: bool) -> Answer:
    """The request rendered canonically at the provider's date, then the provider's answer as the model writes it
    (`harmony.generated_tokens`); the positions of its content tokens."""
    obs = ex.observation
    assert obs is not None
    prompt = harmony.render_chat(ex.chat_request, provider_date(ex))
    completion, positions = harmony.generated_tokens(obs.reasoning, obs.content,
                                                     [(c.name, c.arguments) for c in obs.tool_calls])
    return Answer(ex, sampled, prompt + completion, [len(prompt) + i for i in positions])


def answers(exchanges: list[Exchange]) -> list[Answer]:
    """Every scoreable answer of a journal: each distinct greedy answer once (the same greedy answer on several APIs
    is one piece of evidence), every sample (each is its own draw, repeats included: dropping them would bias the
    sampled test toward rarer answers)."""
    seen: set[tuple[int, ...]] = set()
    out = []
    for ex in exchanges:
        mode = scoreable(ex)
        if mode is None:
            continue
        answer = answer_of(ex, mode)
        if not answer.sampled:
            if (key := tuple(answer.tokens)) in seen:
                continue
            seen.add(key)
        out.append(answer)
    return out


def token_scores(key: str, label: str, sampled: bool, positions: list[int], rows) -> TokenScores:
    """`TokenScores` of the content `positions` of a sequence, from the reference's scores of it (`rows`:
    `Engine.score_batch` from position 1, with moments)."""
    out = TokenScores(key=key, label=label, sampled=sampled)
    for position in positions:
        s = rows[position - 1]
        out.margin.append(max(s.top.logprobs[0] - s.logprob, 0.0))
        out.logprob.append(s.logprob)
        out.entropy.append(s.entropy)
        out.variance.append(s.logprob_variance)
        out.mid_rank.append(s.mid_rank)
        out.cube_sum.append(s.cube_sum)
        out.tokens.append(harmony.token_text(s.token))
    return out


def read_scores(run_dir: Path) -> list[TokenScores]:
    path = Path(run_dir) / FILE
    if not path.exists():
        return []
    out = []
    for number, line in enumerate(path.read_bytes().split(b"\n")[:-1], 1):  # a torn last line is ignored
        try:
            out.append(TokenScores.model_validate_json(line))
        except ValidationError:
            raise VerifierError(f"{path}: line {number} is not a scored answer; delete the file to score again") from None
    return out


def score_answers(todo: list[Answer], engine, run_dir: Path) -> Iterator[TokenScores]:
    """Score `todo` with the reference `engine`, appending each result to `scored.jsonl` as its batch completes."""
    path = Path(run_dir) / FILE
    journal.drop_torn_tail(path)
    with open(path, "a", encoding="utf-8") as fh:
        for start in range(0, len(todo), BATCH):
            batch = todo[start : start + BATCH]
            scored = engine.score_batch([(a.tokens, 1) for a in batch], k=1, moments=True)
            for answer, rows in zip(batch, scored):
                result = token_scores(answer.exchange.key, answer.label, answer.sampled, answer.positions, rows)
                fh.write(result.model_dump_json() + "\n")
                yield result
            fh.flush()
            os.fsync(fh.fileno())


def reference_checkpoint(goldens, checkpoint: Path | None) -> Path:
    """The checkpoint golden came from: `checkpoint` if given (refused unless its hash is golden's), else the
    conformance checkpoint when golden is its."""
    from verifier.reference.build import checkpoint_sha256
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
    reports with `drift.reference_scored`. `dtype`: the reference's (default: golden's)."""
    from verifier.reference.engine import Engine  # torch: loaded only when there is something to score

    run_dir = Path(run_dir)
    if not (run_dir / "result.json").exists():
        raise UsageError(f"{run_dir} has no result.json: finish the run first (gpt-oss-verify run --resume {run_dir})")
    prepared = prepare(RunConfig(), resume=run_dir)
    if prepared.calibration is None:
        raise UsageError("the run's golden has no calibration.json, so this check has no flip margin; "
                         "run `gpt-oss-verify golden calibrate`")
    exchanges = journal.read(run_dir / journal.FILE)
    done = {s.key: s for s in read_scores(run_dir)}
    todo = [a for a in answers(exchanges) if a.exchange.key not in done]
    if todo:
        engine = Engine(reference_checkpoint(prepared.goldens, checkpoint),
                        dtype or prepared.goldens[0].provenance.dtype, device)
        for scored in score_answers(todo, engine, run_dir):
            done[scored.key] = scored
            if progress is not None:
                progress(len(done))
    by_key = {ex.key: ex for ex in exchanges}
    scores = [done[a.exchange.key] for a in answers(exchanges) if a.exchange.key in done]
    spec = next(s for s in ordered() if s.id == CHECK_ID)
    outcomes = reference_scored(scores, by_key, prepared.calibration)
    verdict = aggregate(outcomes)
    check = CheckResult(id=spec.id, family=spec.family, title=spec.title, why=spec.why, source=spec.source,
                        compares=spec.compares, verdict=verdict, outcomes=outcomes,
                        summary=summarise(outcomes, verdict) if outcomes else NOTHING_TO_SCORE)
    result = load(run_dir / "result.json")
    order = [s.id for s in ordered()]
    checks = sorted([c for c in result.checks if c.id != CHECK_ID] + [check], key=lambda c: order.index(c.id))
    result = result.model_copy(update={"checks": checks, "verdict": run_verdict(checks)})
    write_result(result, run_dir, None)
    write_reports(result, run_dir)
    return result, check

