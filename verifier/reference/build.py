"""Build golden records: run the reference over a suite, greedy, and score every golden token."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from verifier import __version__, harmony
from verifier.golden import GoldenFile, GoldenMessage, GoldenRecord, GoldenTurn, Provenance, TokenScore, now
from verifier.observation import ToolCall
from verifier.paths import cache_dir
from verifier.reference import constraints
from verifier.reference.checkpoints import resolve
from verifier.reference.engine import Engine
from verifier.suites import Case, Suite

MAX_TURNS = 4
DEFAULT_MAX_TOKENS = 256


def checkpoint_sha256(checkpoint: Path) -> str:
    """sha256 over config.json and the weight files (per-file digests cached by size and mtime), of the
    directory that holds them (`original/` for OpenAI's layout)."""
    checkpoint = resolve(checkpoint).path
    digest = hashlib.sha256((checkpoint / "config.json").read_bytes())
    cache_file = cache_dir() / "checkpoint-hashes.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    for path in sorted(checkpoint.glob("*.safetensors")):
        stat = path.stat()
        key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        if key not in cache:
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 24):
                    h.update(chunk)
            cache[key] = h.hexdigest()
        digest.update(f"{path.name}:{cache[key]}".encode())
    cache_file.write_text(json.dumps(cache))
    return digest.hexdigest()


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


def run_turn(engine: Engine, request: dict, date: str, top_k: int, scored: bool = True) -> GoldenTurn:
    """One turn: greedy decoding, then (unless `scored` is False: `build` scores in batches) the
    teacher-forced top-K of every completion token."""
    prompt = harmony.render_chat(request, date)
    max_tokens = int(request.get("max_tokens") or request.get("max_completion_tokens") or DEFAULT_MAX_TOKENS)
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
        turn.scores = _token_scores(engine.score(prompt + gen.tokens, start=len(prompt), k=top_k))
    return turn


def _token_scores(scored) -> list[TokenScore]:
    return [TokenScore(token=s.token, logprob=s.logprob, top_ids=s.top.ids, top_logprobs=s.top.logprobs)
            for s in scored]


def run_case(engine: Engine, case: Case, date: str, top_k: int, scored: bool = True) -> GoldenRecord:
    """All turns of a case: the first request, then each tool loop step the case has results for."""
    turns: list[GoldenTurn] = []
    request: dict | None = case.request
    while request is not None and len(turns) < MAX_TURNS:
        turn = run_turn(engine, request, date, top_k, scored)
        turns.append(turn)
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
          progress=None, batch_size: int = 1) -> GoldenFile:
    """Golden records for every case of `suite`.

    Decoding is one case at a time (tool loops need the previous turn). With `batch_size` 1 every
    turn is scored on its own, bit-identical to `Engine.score`; above 1 the turns of the whole suite
    are scored together afterwards, that many sequences per forward pass."""
    records = []
    for case in suite.cases:
        records.append(run_case(engine, case, date, top_k, scored=batch_size <= 1))
        if progress:
            progress(case.id)
    if batch_size > 1:
        turns = [turn for record in records for turn in record.turns]
        scored = engine.score_batch([(t.prompt_token_ids + t.completion_token_ids, len(t.prompt_token_ids))
                                     for t in turns], k=top_k, batch_size=batch_size)
        for turn, scores in zip(turns, scored):
            turn.scores = _token_scores(scores)
    prov = Provenance(
        checkpoint=checkpoint_name(engine.checkpoint), checkpoint_sha256=checkpoint_sha256(engine.checkpoint),
        backend=backend_label(engine, batch_size), dtype=engine.dtype, device=engine.device, libraries=_libraries(engine.backend),
        suite=suite.name, suite_version=suite.version, suite_sha256=suite.sha256, date=date,
        top_k=top_k, created=now(),
    )
    return GoldenFile(provenance=prov, records=records)
