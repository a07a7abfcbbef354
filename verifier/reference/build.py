"""Build golden records: run the reference over a suite, greedy, and score every golden token."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from verifier import __version__, harmony
from verifier.errors import UsageError
from verifier.golden import GoldenFile, GoldenMessage, GoldenRecord, GoldenTurn, Provenance, TokenScore, now
from verifier.observation import ToolCall
from verifier.reference import constraints
from verifier.reference.checkpoints import checkpoint_sha256, resolve
from verifier.reference.engine import Engine
from verifier.suites import Case, Suite, max_tokens_of

MAX_TURNS = 4

Report = Callable[[str], None]
"""Where `build` reports progress: one line per turn and per suite."""


def checkpoint_name(checkpoint: Path) -> str:
    meta = Path(checkpoint) / "conformance.json"
    if meta.is_file():
        return json.loads(meta.read_text())["name"]
    return resolve(checkpoint).name


def _libraries(backend: str = "transformers") -> dict[str, str]:
    out = {"verifier": __version__}
    kernels = ("triton", "kernels") if backend == "mxfp4-triton" else ()
    for name in ("torch", "transformers", "openai-harmony", *kernels):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def finish_reason(tokens: list[int]) -> str:
    if tokens and tokens[-1] == harmony.CALL:
        return "tool_calls"
    if tokens and tokens[-1] == harmony.RETURN:
        return "stop"
    return "length"


def reasoning_token_count(tokens: list[int]) -> int:
    """Tokens of analysis-message content (headers and stop tokens excluded)."""
    return sum(s.end - s.start for s in harmony.content_spans(tokens) if s.channel == "analysis")


def capped(request: dict, max_tokens: int | None) -> dict:
    """The request with its completion limit lowered to `max_tokens` (None: unchanged), in the field it uses."""
    if max_tokens is None or max_tokens_of(request) <= max_tokens:
        return request
    key = "max_completion_tokens" if "max_completion_tokens" in request and "max_tokens" not in request else "max_tokens"
    return {**request, key: max_tokens}


def limited(suites: list[Suite], cases: int | None = None, case_ids: list[str] | None = None,
            max_tokens: int | None = None) -> list[Suite]:
    """The suites restricted to the cases named (in suite order; suites without any left out), then to
    their first `cases`, every request's completion capped at `max_tokens`: a golden built in bounded
    time. Its records cover only those cases, so a run of a whole suite refuses it (`golden.check_matches`)."""
    known = {c.id for s in suites for c in s.cases}
    unknown = sorted(set(case_ids or []) - known)
    if unknown:
        raise UsageError(f"no suite chosen has a case {unknown[0]!r}")
    out = []
    for suite in suites:
        chosen = [c for c in suite.cases if not case_ids or c.id in set(case_ids)][:cases]
        chosen = [c.model_copy(update={"request": capped(c.request, max_tokens)}) for c in chosen]
        if chosen:
            out.append(suite.model_copy(update={"cases": chosen}))
    return out


def run_turn(engine: Engine, request: dict, date: str, top_k: int, scored: bool = True) -> GoldenTurn:
    """One turn: greedy decoding, then (unless `scored` is False: `build` scores in batches) the
    teacher-forced top-K of every completion token."""
    prompt = harmony.render_chat(request, date)
    max_tokens = max_tokens_of(request)
    gen = engine.generate(prompt, max_tokens, harmony.ASSISTANT_STOPS, transform=constraints.for_request(request))
    parsed = harmony.parse_completion(gen.tokens)
    turn = GoldenTurn(
        request=request,
        prompt_token_ids=prompt,
        completion_token_ids=gen.tokens,
        scores=[],
        messages=[GoldenMessage(**m.to_dict()) for m in parsed.messages],
        finish_reason=finish_reason(gen.tokens),
        reasoning_tokens=reasoning_token_count(gen.tokens),
        forced_positions=gen.forced,
    )
    if scored:
        set_scores(turn, engine.score(prompt + gen.tokens, start=len(prompt), k=top_k))
    return turn


def set_scores(turn: GoldenTurn, scored) -> None:
    """The turn's teacher-forced scores, and the positions where its greedy token is not their top-1."""
    turn.scores = _token_scores(scored)
    forced = set(turn.forced_positions)
    turn.off_top1_positions = [i for i, s in enumerate(turn.scores) if s.off_top1 and i not in forced]


def _token_scores(scored) -> list[TokenScore]:
    return [TokenScore(token=s.token, logprob=s.logprob, top_ids=s.top.ids, top_logprobs=s.top.logprobs)
            for s in scored]


def describe(turn: GoldenTurn, seconds: float) -> str:
    """A progress line's account of one turn."""
    n = len(turn.completion_token_ids)
    off = f", {len(turn.off_top1_positions)} greedy tokens below the teacher-forced top-1" if turn.scores else ""
    return f"{n} tokens ({turn.finish_reason}) in {seconds:.1f} s, {n / max(seconds, 1e-9):.1f} tokens/s{off}"


def run_case(engine: Engine, case: Case, date: str, top_k: int, scored: bool = True,
             report: Report | None = None) -> GoldenRecord:
    """All turns of a case: the first request, then each tool loop step the case has results for."""
    turns: list[GoldenTurn] = []
    request: dict | None = case.request
    while request is not None and len(turns) < MAX_TURNS:
        start = time.perf_counter()
        turn = run_turn(engine, request, date, top_k, scored)
        turns.append(turn)
        if report:
            report(f"{case.id} turn {len(turns)}: {describe(turn, time.perf_counter() - start)}")
        calls = [ToolCall(id=f"call_{len(turns)}_{i}", name=m.recipient.removeprefix("functions."), arguments=m.text)
                 for i, m in enumerate(turn.tool_calls)]
        request = case.follow_up(request, turn.reasoning, calls) if turn.finish_reason == "tool_calls" else None
    return GoldenRecord(case_id=case.id, turns=turns)


def backend_label(engine: Engine, batch_size: int = 1) -> str:
    """Provenance `backend`: `transformers` (dequantised experts; as every golden so far), or
    `transformers-mxfp4-triton`, with the scoring batch when it is not 1 (batching moves values at
    the dtype's rounding)."""
    label = "transformers" if engine.backend == "transformers" else f"transformers-{engine.backend}"
    return label if batch_size <= 1 else f"{label} (scored in batches of {batch_size})"


def build(engine: Engine, suite: Suite, date: str = harmony.DEFAULT_DATE, top_k: int = 20,
          progress: Report | None = None, batch_size: int = 1, max_tokens: int | None = None) -> GoldenFile:
    """Golden records for every case of `suite` (see `limited` for a bounded build; `max_tokens` is
    the cap it applied, recorded in the provenance), reporting each turn to `progress`.

    Decoding is one case at a time (tool loops need the previous turn). With `batch_size` 1 every
    turn is scored on its own, bit-identical to `Engine.score`; above 1 the turns of the whole suite
    are scored together afterwards, that many sequences per forward pass."""
    records = []
    for number, case in enumerate(suite.cases, 1):
        report = (lambda line, n=number: progress(f"{suite.name} {n}/{len(suite.cases)} {line}")) if progress else None
        records.append(run_case(engine, case, date, top_k, scored=batch_size <= 1, report=report))
    turns = [turn for record in records for turn in record.turns]
    if batch_size > 1:
        start = time.perf_counter()
        scored = engine.score_batch([(t.prompt_token_ids + t.completion_token_ids, len(t.prompt_token_ids))
                                     for t in turns], k=top_k, batch_size=batch_size)
        for turn, scores in zip(turns, scored):
            set_scores(turn, scores)
        if progress:
            progress(f"{suite.name}: {len(turns)} turns scored in batches of {batch_size} in "
                     f"{time.perf_counter() - start:.1f} s")
    if progress:
        off = sum(len(t.off_top1_positions) for t in turns)
        progress(f"{suite.name}: {len(records)} cases, {len(turns)} turns, {sum(len(t.scores) for t in turns)} "
                 f"positions, {off} greedy tokens below the teacher-forced top-1")
    prov = Provenance(
        checkpoint=checkpoint_name(engine.checkpoint), checkpoint_sha256=checkpoint_sha256(engine.checkpoint),
        backend=backend_label(engine, batch_size), dtype=engine.dtype, device=engine.device, libraries=_libraries(engine.backend),
        suite=suite.name, suite_version=suite.version, suite_sha256=suite.sha256, date=date,
        top_k=top_k, max_tokens=max_tokens, created=now(),
    )
    return GoldenFile(provenance=prov, records=records)
