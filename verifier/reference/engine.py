"""The reference engine: a transformers gpt-oss model with greedy/sampled decoding and scoring.

Used by the golden builder (greedy decode, then teacher-forced top-K log-probabilities) and by the
built-in provider (decoding with per-token log-probabilities, prompt scoring for `echo`).
Log-probabilities are always of the model's raw distribution (temperature 1, no penalties), as
vLLM and the OpenAI API report them.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import os
import pickle
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import torch

from verifier import __version__
from verifier.errors import CheckpointError, UsageError
from verifier.reference import checkpoints

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
MXFP4 = "mxfp4"
"""The dtype label of the `mxfp4-triton` backend: MXFP4 experts, bf16 everything else and activations."""
SCORE_CHUNK = 256
"""Positions whose logits exist at once: memory O(chunk x vocab), never O(sequence x vocab)."""
MEMO_ENV = "GPT_OSS_VERIFY_ENGINE_MEMO"
"""A folder where engines of every process that names it memoise greedy generations and scores on disk as well:
a test session's workers and the servers and runs they start decode a prompt once. Meant for one session on one
machine (the tests make one per session): keyed by the checkpoint's content, dtype, backend, device, numeric
faults, the verifier's, torch's and transformers' versions, torch's thread count and CPU capability, not by the
code between releases. Never for an engine handed a model loaded elsewhere, nor under logprob-noise (its
reports follow the order requests arrive in)."""


@dataclass
class TopK:
    """The K most likely next tokens at one position, best first, with their log-probabilities."""

    ids: list[int]
    logprobs: list[float]


@dataclass
class ScoredToken:
    """One position of a sequence: the token there, its log-probability and the top-K."""

    token: int
    logprob: float
    top: TopK
    entropy: float | None = None
    """H = -E[log p] of the whole distribution here (nats), when asked for (`moments`)."""
    logprob_variance: float | None = None
    """Var[log p] of the whole distribution here, when asked for: with `entropy`, what a token drawn from the
    reference would score, so a provider's sampled tokens can be tested against it."""
    mid_rank: float | None = None
    """The token's mid-distribution transform, when asked for: the probability of every likelier token plus half
    that of the token and its ties. For a token drawn from this distribution its mean is exactly 1/2 and its
    variance (1 - Σp³)/12, bounded, whatever the distribution (`verifier.drift.provider_tokens`)."""
    cube_sum: float | None = None
    """Σp³ over the vocabulary, when asked for (near 1 where the distribution is nearly certain)."""


@dataclass
class Generation:
    """A decoded continuation."""

    tokens: list[int] = field(default_factory=list)
    scored: list[ScoredToken] = field(default_factory=list)
    stopped: bool = False
    """True if a stop token ended it (the stop token is the last of `tokens`)."""
    forced: list[int] = field(default_factory=list)
    """Positions a decoding constraint forced (see `verifier.reference.constraints`)."""


def load_model(checkpoint: Path, dtype: str = "fp32", device: str = "cpu", backend: str = "transformers"):
    """Load a local gpt-oss checkpoint directory (never from a hub) in eval mode: the Hugging Face
    layout (bf16 or MXFP4 experts) or OpenAI's original/ layout (see `verifier.reference.checkpoints`)."""
    if dtype not in DTYPES:
        raise CheckpointError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return checkpoints.load_model(Path(checkpoint), DTYPES[dtype], device, backend)


NUMERIC_FAULTS = {
    "fp8-activations": "hidden states rounded to FP8 (e4m3, per-tensor scale) between layers",
    "fp8-kv": "keys and values rounded to FP8 (e4m3, per-tensor scale) before attention",
    "logprobs-after-temperature": "log-probabilities reported from the distribution at temperature 0.7",
    "logprob-noise": "every reported log-probability plus Gaussian noise of sd 0.05 nats (tokens chosen as the model does)",
}
LOGPROB_TEMPERATURE_FAULT = 0.7
LOGPROB_NOISE_SD = 0.05


def _moments(logprobs: torch.Tensor, chosen: torch.Tensor) -> list[list[float]]:
    """Per row of log-probabilities [N, V] and its chosen token: the entropy, the variance of log p under p, the
    chosen token's mid-distribution transform and Σp³ (see `ScoredToken`), in float64 sums."""
    lp = logprobs.double()
    p = lp.exp()
    plogp = torch.where(p > 0, p * lp, 0.0)  # a masked logit (-inf) adds nothing
    entropy = -plogp.sum(-1)
    second = torch.where(p > 0, plogp * lp, 0.0).sum(-1)
    own = lp.gather(1, chosen[:, None])
    mid_rank = (p * (lp > own)).sum(-1) + (p * (lp == own)).sum(-1) / 2
    return [entropy.tolist(), (second - entropy * entropy).clamp(min=0).tolist(), mid_rank.tolist(),
            (p * p * p).sum(-1).tolist()]


def fp8_round(x: torch.Tensor) -> torch.Tensor:
    """Round to float8 e4m3 with a per-tensor scale (as FP8 kernels do), back in the input dtype."""
    scale = x.abs().amax().float().clamp(min=1e-12) / 448.0
    return ((x.float() / scale).to(torch.float8_e4m3fn).float() * scale).to(x.dtype)


def _install_numeric_faults(model, faults: frozenset[str]) -> None:
    def round_output(_module, _inputs, output):
        if isinstance(output, tuple):
            return (fp8_round(output[0]), *output[1:])
        return fp8_round(output)

    for name, module in model.named_modules():
        if "fp8-activations" in faults and re.fullmatch(r"model\.layers\.\d+", name):
            module.register_forward_hook(round_output)
        if "fp8-kv" in faults and name.endswith(("self_attn.k_proj", "self_attn.v_proj")):
            module.register_forward_hook(round_output)


class Engine:
    """A loaded reference model. Thread-safe: calls are serialised.

    Greedy generations and scores are memoised (bounded LRU): the same prompt sent through Chat, its
    stream, Responses and raw Completions decodes once. Greedy decoding is deterministic, so this
    changes no result; sampled generations are never memoised.
    """

    CACHE_SIZE = 256

    def __init__(self, checkpoint: Path, dtype: str = "fp32", device: str = "cpu",
                 numeric_faults: frozenset[str] = frozenset(), backend: str = "transformers", model=None):
        """`dtype` fp32 or bf16 (backend `transformers`: experts dequantised to it), or `mxfp4`, which
        means backend `mxfp4-triton` (its only dtype; bf16 activations). `model`: one already loaded
        at that dtype (e.g. sharded across processes by `verifier.reference.parallel`), else loaded here."""
        if dtype == MXFP4:
            backend = "mxfp4-triton"
        elif backend == "mxfp4-triton":
            if dtype != "bf16":
                raise UsageError(f"backend mxfp4-triton computes in bf16 around MXFP4 experts, not {dtype}")
            dtype = MXFP4
        self.checkpoint = Path(checkpoint)
        self.dtype = dtype
        """The golden label: fp32, bf16 or mxfp4."""
        self.backend = backend
        self.device = device
        self.model = model if model is not None else load_model(self.checkpoint, "bf16" if dtype == MXFP4 else dtype,
                                                                device, backend)
        self.lock = threading.Lock()
        self.numeric_faults = frozenset(numeric_faults) & set(NUMERIC_FAULTS)
        _install_numeric_faults(self.model, self.numeric_faults)
        self.logprob_temperature = (LOGPROB_TEMPERATURE_FAULT if "logprobs-after-temperature" in self.numeric_faults
                                    else 1.0)
        self.logprob_noise = torch.Generator().manual_seed(0) if "logprob-noise" in self.numeric_faults else None
        self.chunk = SCORE_CHUNK
        self._memo: OrderedDict = OrderedDict()
        self._disk = _disk_memo(self) if model is None else None

    def _reported(self, logits: torch.Tensor, k: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The log-probabilities [.., V] in fp32 the engine reports for logits, and their top k (values, ids;
        empty for k = 0); as the numeric faults change them (temperature, noise), never the tokens chosen. With
        logprob-noise the numbers are no longer normalised (a near-certain token may report above 0) and the
        draws follow the order requests arrive in: a provider's noise, not a reproducible one."""
        logprobs = torch.log_softmax(logits.float() / self.logprob_temperature, dim=-1)
        if self.logprob_noise is not None:
            noise = torch.randn(logprobs.shape, generator=self.logprob_noise, dtype=torch.float32)
            logprobs = logprobs + LOGPROB_NOISE_SD * noise.to(logprobs.device)
        if k <= 0:
            return logprobs, (logprobs[..., :0], logprobs[..., :0].long())
        return logprobs, torch.topk(logprobs, k, dim=-1)

    def _recall(self, key):
        if key is None:
            return None
        key = (self.chunk, key)  # rows of logits at once: their rounding
        if key not in self._memo:
            if self._disk is None or (value := self._disk.recall(key)) is None:
                return None
            self._store(key, value)
        self._memo.move_to_end(key)
        return copy.deepcopy(self._memo[key])

    def _remember(self, key, value) -> None:
        if key is None:
            return
        key = (self.chunk, key)
        self._store(key, copy.deepcopy(value))
        if self._disk is not None:
            self._disk.remember(key, value)

    def _store(self, key, value) -> None:
        self._memo[key] = value
        if len(self._memo) > self.CACHE_SIZE:
            self._memo.popitem(last=False)

    def _memoised(self, key, compute):
        """compute(), or a copy of its remembered result for `key` (None: never remembered)."""
        with self.lock:
            if (hit := self._recall(key)) is not None:
                return hit
        value = compute()
        with self.lock:
            self._remember(key, value)
        return value

    def score(self, tokens: list[int], start: int = 1, k: int = 20) -> list[ScoredToken]:
        """Teacher-forced scores of tokens[start:], each given everything before it."""
        return self._memoised(("score", tuple(tokens), start, k), lambda: self._score(tokens, start, k))

    def _hidden(self, ids: torch.Tensor, mask: torch.Tensor | None = None, past=None, use_cache: bool = False):
        """The final hidden states (after the last norm) of the model: the logits are `lm_head` of them,
        computed by the callers a chunk of positions at a time."""
        return self.model.model(input_ids=ids, attention_mask=mask, past_key_values=past, use_cache=use_cache)

    def _scored_rows(self, hidden: torch.Tensor, tokens: list[int], start: int, k: int,
                     moments: bool = False) -> list[ScoredToken]:
        """Scores of tokens[start:] from the hidden states `[T, H]` of `tokens`, at most `self.chunk`
        rows of logits at a time, in equal chunks (no 1-row remainder: a matrix-vector product may
        round differently from the full-logits matrix product; at the default chunk the result is
        bit-identical to full logits, tested)."""
        rows = hidden[max(start - 1, 0) : len(tokens) - 1]
        size = math.ceil(rows.shape[0] / max(math.ceil(rows.shape[0] / self.chunk), 1)) if rows.shape[0] else 1
        out = []
        for offset in range(0, rows.shape[0], size):
            logits = self.model.lm_head(rows[offset : offset + size])
            logprobs, (values, top_ids) = self._reported(logits, k)
            chosen = torch.tensor(tokens[start + offset : start + offset + logits.shape[0]], device=logprobs.device)
            picked = logprobs.gather(1, chosen[:, None])[:, 0].tolist()
            extra = _moments(logprobs, chosen) if moments else [[None] * len(picked)] * 4
            for row, (ids_row, values_row) in enumerate(zip(top_ids.tolist(), values.tolist())):
                out.append(ScoredToken(int(chosen[row]), picked[row], TopK(ids_row, values_row),
                                       *(column[row] for column in extra)))
            del logits, logprobs
        return out

    @torch.inference_mode()
    def distributions(self, tokens: list[int], positions: list[int]) -> Iterator[torch.Tensor]:
        """The full-vocabulary log-probabilities the engine reports for each tokens[p] of `positions` (p >= 1)
        given what precedes it, float32, as `[rows, V]` blocks of at most `self.chunk` rows in order: after its
        numeric faults' temperature and noise, renormalised (a logprob-noise fault's reports are not normalised)."""
        if any(p < 1 or p >= len(tokens) for p in positions):
            raise ValueError("a position must have a token before it and lie inside tokens")
        with self.lock:
            hidden = self._hidden(torch.tensor([tokens], device=self.device)).last_hidden_state[0]
        for offset in range(0, len(positions), self.chunk):
            rows = torch.tensor([p - 1 for p in positions[offset : offset + self.chunk]], device=self.device)
            with self.lock:  # not across a yield: another generator of this engine may run between blocks
                block = torch.log_softmax(self._reported(self.model.lm_head(hidden[rows]), 0)[0], dim=-1)
            yield block

    @torch.inference_mode()
    def _score(self, tokens: list[int], start: int, k: int) -> list[ScoredToken]:
        with self.lock:
            ids = torch.tensor([tokens], device=self.device)
            return self._scored_rows(self._hidden(ids).last_hidden_state[0], tokens, start, k)

    @torch.inference_mode()
    def score_batch(self, items: list[tuple[list[int], int]], k: int = 20, batch_size: int = 8,
                    max_batch_tokens: int = 65536, pad: int = 0, moments: bool = False) -> list[list[ScoredToken]]:
        """`score(tokens, start, k)` of many sequences, `batch_size` at a time (right-padded, padding
        masked out; longest first so each batch pads little). Not memoised, and not bit-identical to
        `score`: padding changes the kernels' shapes, so values differ at the dtype's rounding (see
        the README's golden section for the measured size)."""
        order = sorted(range(len(items)), key=lambda i: -len(items[i][0]))
        out: list[list[ScoredToken] | None] = [None] * len(items)
        i = 0
        while i < len(order):
            width = len(items[order[i]][0])
            take = max(1, min(batch_size, max_batch_tokens // max(width, 1)))
            group = order[i : i + take]
            i += len(group)
            ids = torch.full((len(group), width), pad, dtype=torch.long)
            mask = torch.zeros((len(group), width), dtype=torch.long)
            for row, index in enumerate(group):
                tokens = items[index][0]
                ids[row, : len(tokens)] = torch.tensor(tokens)
                mask[row, : len(tokens)] = 1
            with self.lock:
                hidden = self._hidden(ids.to(self.device), mask.to(self.device)).last_hidden_state
                for row, index in enumerate(group):
                    tokens, start = items[index]
                    out[index] = self._scored_rows(hidden[row], tokens, start, k, moments)
        return out  # type: ignore[return-value]

    def generate(self, prompt: list[int], max_tokens: int, stop: tuple[int, ...], k: int = 0,
                 temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
                 transform=None) -> Generation:
        """Decode up to `max_tokens` tokens after `prompt` (see `_generate`), memoised when greedy."""
        key = None
        if temperature <= 0 and (transform is None or getattr(transform, "cache_key", None)):
            key = ("generate", tuple(prompt), max_tokens, tuple(stop), k, getattr(transform, "cache_key", None))
        return self._memoised(key, lambda: self._generate(prompt, max_tokens, stop, k, temperature, top_p, seed,
                                                          transform))

    @torch.inference_mode()
    def _generate(self, prompt: list[int], max_tokens: int, stop: tuple[int, ...], k: int,
                  temperature: float, top_p: float, seed: int | None, transform) -> Generation:
        """Decode up to `max_tokens` tokens after `prompt` with a KV cache.

        Greedy when `temperature` is 0. `k` > 0 records the top-k log-probabilities per step, always
        of the model's own distribution. `transform(tokens_so_far, logits)` may alter the logits
        before selection (decoding constraints, fault modes).
        """
        gen = Generation()
        rng = torch.Generator().manual_seed(seed) if seed is not None else None
        with self.lock:
            ids = torch.tensor([prompt], device=self.device)
            past = None
            for _ in range(max_tokens):
                out = self._hidden(ids, past=past, use_cache=True)
                past = out.past_key_values
                # the last row's logits, from as many rows as one chunk (the same kernels, bit for bit,
                # as logits of every prompt position, without their memory)
                logits = self.model.lm_head(out.last_hidden_state[0, -self.chunk :])[-1].float()
                chosen = transform(gen.tokens, logits) if transform is not None else logits
                token = self._select(chosen, temperature, top_p, rng)
                logprobs, (values, top_ids) = self._reported(logits, k)
                gen.tokens.append(token)
                gen.scored.append(ScoredToken(token, logprobs[token].item(),
                                              TopK(top_ids.tolist()[:k], values.tolist()[:k])))
                if token in stop:
                    gen.stopped = True
                    break
                ids = torch.tensor([[token]], device=self.device)
        gen.forced = list(getattr(transform, "positions", []))
        return gen

    @staticmethod
    def _select(logits: torch.Tensor, temperature: float, top_p: float, rng) -> int:
        if temperature <= 0:
            return int(torch.argmax(logits).item())
        probs = torch.softmax(logits / temperature, dim=-1)
        if top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_probs, 0) - sorted_probs < top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
        return int(torch.multinomial(probs / probs.sum(), 1, generator=rng).item())


class DiskMemo:
    """Greedy generations and scores of one engine configuration in a folder shared across processes: one pickle per
    key, written to a temporary name and renamed into place, so a reader never sees half a file; an entry that
    cannot be read is computed again. The configuration (`describe()`) is read at the first use."""

    def __init__(self, folder: Path, describe: Callable[[], str | None]):
        self.folder = folder
        self._describe = describe

    @functools.cached_property
    def prefix(self) -> str | None:
        return self._describe()

    def _path(self, key) -> Path | None:
        if self.prefix is None:
            return None
        return self.folder / f"{hashlib.sha256(repr((self.prefix, key)).encode()).hexdigest()}.pickle"

    def recall(self, key):
        try:
            return pickle.loads(path.read_bytes()) if (path := self._path(key)) else None
        except Exception:  # noqa: BLE001 - torn, foreign or stale: computed again
            return None

    def remember(self, key, value) -> None:
        if (path := self._path(key)) is None:
            return
        partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(pickle.dumps(value))
            partial.replace(path)
        except OSError:
            partial.unlink(missing_ok=True)


def _disk_memo(engine: Engine) -> DiskMemo | None:
    """The engine's memo on disk, where `MEMO_ENV` names a folder (see there)."""
    folder = os.environ.get(MEMO_ENV)
    if not folder or "logprob-noise" in engine.numeric_faults:
        return None

    def describe() -> str | None:
        try:
            content = checkpoints.checkpoint_sha256(engine.checkpoint)
        except (OSError, CheckpointError, UsageError, ValueError):
            return None  # no memo for what cannot be identified
        return repr((content, engine.dtype, engine.backend, str(engine.device), sorted(engine.numeric_faults),
                     __version__, torch.__version__, version("transformers"), torch.get_num_threads(),
                     torch.backends.cpu.get_cpu_capability()))

    return DiskMemo(Path(folder), describe)
