"""Builders of check inputs, and the record of which verdicts the tests show for each check.

Every import of the verifier's types that the check tests need is here, so that a type moving to
another module is followed in one place. Inputs are built directly: requests rendered by the real
openai-harmony encoding, golden turns whose top-1/top-2 margins the test chooses position by
position, provider observations, scores and greedy logprobs derived from golden, suites and
calibrations. No network, no model.

`shows(check_id, verdict)` marks a test as evidence that `check_id` can give `verdict`: the test
returns the check's outcomes and the decorator asserts that they aggregate to that verdict.
`test_coverage.py` asserts that every registered check is shown both passing and failing.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from verifier import harmony
from verifier.checks import REGISTRY
from verifier.checks.base import ExchangeView, SuiteView
from verifier.drift.calibration import Calibration
from verifier.drift.sequential import Boundary
from verifier.errors import FailureKind
from verifier.exchange import Exchange
from verifier.golden import GoldenFile, GoldenMessage, GoldenRecord, GoldenTurn, Provenance, TokenScore
from verifier.observation import Api, Failure, Observation, TokenLogprob, ToolCall, TopLogprob, Usage
from verifier.result import aggregate
from verifier.scores import PositionScore, ScoreResult
from verifier.suites import Case, Suite
from verifier.verdict import Outcome, Verdict

DATE = harmony.DEFAULT_DATE
"""The date golden prompts are rendered with here."""
CREATED = 1754395200
"""2025-08-05 12:00 UTC: a provider's `created` on golden's date."""

DECISIVE = 5.0
"""A golden margin (nats) far above any flip margin: honest engines keep this token."""
BETWEEN = 1.5
"""Above the uncalibrated wide margin (1.0 in thresholds.json), below `FLIP_MARGIN`."""
NEAR_TIE = 0.5
"""Below every threshold: an honest engine may take the other branch here."""
FLIP_MARGIN = 2.0
"""The flip margin of the calibrations built here."""
BOUNDARY = 0.1
"""The running-median relative log-odds boundary of the calibrations built here (from 16 positions)."""
GOLDEN_LOGPROB = -0.01
"""The golden token's log-probability at every position, unless a test sets it."""

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}

REASONING = "The user asks for the capital of France. That is Paris, so I answer with one word and stop there."
FINAL = "Paris"
CALL_ARGUMENTS = '{"city":"Paris"}'

# -- coverage record ------------------------------------------------------------------------------

SHOWN: dict[str, set[Verdict]] = defaultdict(set)
"""check id -> the verdicts some test in tests/checks shows it giving."""


def shows(check_id: str, verdict: Verdict) -> Callable:
    """Mark a test as showing `check_id` give `verdict`. The test returns the check's outcomes (a list,
    one outcome or None); the wrapper asserts that they are not empty and aggregate to `verdict`."""
    if check_id not in REGISTRY:
        raise KeyError(f"no check {check_id!r} is registered")
    SHOWN[check_id].add(verdict)

    def decorate(test: Callable) -> Callable:
        @functools.wraps(test)
        def wrapper(*args, **kwargs) -> None:
            outcomes = as_list(test(*args, **kwargs))
            assert outcomes, f"{check_id} gave no outcome"
            got = aggregate(outcomes)
            assert got is verdict, f"{check_id}: {got.value}, expected {verdict.value}: " + "; ".join(
                f"{o.verdict.value} {o.message}" for o in outcomes)

        return wrapper

    return decorate


def as_list(result: list[Outcome] | Outcome | None) -> list[Outcome]:
    if result is None:
        return []
    return [result] if isinstance(result, Outcome) else list(result)


def run(check_id: str, view: ExchangeView | SuiteView) -> list[Outcome]:
    """The outcomes of a registered check on a view, always as a list."""
    return as_list(REGISTRY[check_id].fn(view))


# -- requests and Harmony completions -------------------------------------------------------------


def request(content: str = "What is the capital of France? One word.", **extra: object) -> dict:
    """A Chat Completions body (without `model`)."""
    return {"messages": [{"role": "user", "content": content}], **extra}


def tool_request(tool_choice: object = None, content: str = "What is the weather in Paris?") -> dict:
    body = request(content, tools=[WEATHER, TIME])
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    return body


@dataclass
class Completion:
    """Harmony completion tokens, as an assistant generates them after `<|start|>assistant`, and where
    each message's content lies in them."""

    tokens: list[int] = field(default_factory=list)
    content: dict[str, range] = field(default_factory=dict)
    """`analysis`, `final` or `call` -> the positions of that message's content tokens."""

    def message(self, name: str, header: str, text: str, stop: str) -> None:
        if self.tokens:
            self.tokens += harmony.encode_with_specials("<|start|>assistant")
        self.tokens += harmony.encode_with_specials(header + "<|message|>")
        start = len(self.tokens)
        self.tokens += harmony.encode(text)
        self.content[name] = range(start, len(self.tokens))
        self.tokens += harmony.encode_with_specials(stop)


def completion(reasoning: str = REASONING, final: str | None = FINAL, call: ToolCall | None = None) -> Completion:
    """Analysis, then a tool call (if given) or a final answer."""
    out = Completion()
    if reasoning:
        out.message("analysis", "<|channel|>analysis", reasoning, "<|end|>")
    if call is not None:
        out.message("call", f"<|channel|>commentary to=functions.{call.name} <|constrain|>json", call.arguments,
                    "<|call|>")
    elif final is not None:
        out.message("final", "<|channel|>final", final, "<|return|>")
    return out


def call(name: str = "get_weather", arguments: str = CALL_ARGUMENTS, id: str = "call_0") -> ToolCall:
    return ToolCall(id=id, name=name, arguments=arguments)


# -- golden ---------------------------------------------------------------------------------------


def _alternatives(token: int) -> list[int]:
    """Two tokens other than `token`, with texts unlike it and each other."""
    pool = [harmony.encode(word)[0] for word in (" zebra", " quokka", " axolotl")]
    return [t for t in pool if t != token][:2]


def token_score(token: int, margin: float, logprob: float = GOLDEN_LOGPROB) -> TokenScore:
    """Golden's distribution at one position: `token` best, the runner-up `margin` nats below, a third 1 nat
    further down."""
    second, third = _alternatives(token)
    return TokenScore(token=token, logprob=logprob, top_ids=[token, second, third],
                      top_logprobs=[logprob, logprob - margin, logprob - margin - 1.0])


def golden_turn(body: dict, done: Completion, margins: dict[int, float] | None = None, default: float = DECISIVE,
                forced: list[int] | None = None, logprob: float = GOLDEN_LOGPROB) -> GoldenTurn:
    """A golden turn for `body` whose greedy completion is `done`: every position has margin `default`
    except those in `margins` (position -> margin)."""
    margins = margins or {}
    parsed = harmony.parse_completion(done.tokens)
    return GoldenTurn(
        request=body, prompt_token_ids=harmony.render_chat(body, DATE), completion_token_ids=done.tokens,
        scores=[token_score(t, margins.get(i, default), logprob) for i, t in enumerate(done.tokens)],
        messages=[GoldenMessage(channel=m.channel, recipient=m.recipient, content_type=m.content_type, text=m.text)
                  for m in parsed.messages],
        finish_reason="tool_calls" if parsed.tool_calls else "stop",
        reasoning_tokens=len(done.content.get("analysis", ())), forced_positions=forced or [])


def tie_in(done: Completion, name: str, margin: float = NEAR_TIE) -> dict[int, float]:
    """Margins for a single near-tie at the first content token of message `name`."""
    return {done.content[name][0]: margin}


def tie_at(done: Completion, name: str, text: str, margin: float = NEAR_TIE) -> dict[int, float]:
    """Margins for a single near-tie at the token where `text` begins inside message `name`."""
    span = done.content[name]
    whole = harmony.decode(done.tokens[span.start:span.stop])
    before = whole[:whole.index(text)]
    at = next(i for i in span if len(harmony.decode(done.tokens[span.start:i + 1])) > len(before))
    return {at: margin}


def provenance(suite: str = "checks") -> Provenance:
    return Provenance(checkpoint="test", checkpoint_sha256="0" * 64, backend="test", dtype="fp32", device="cpu",
                      libraries={}, suite=suite, suite_version=1, suite_sha256="0" * 64, date=DATE, top_k=3,
                      created="2025-08-05T00:00:00+00:00")


def golden_file(records: list[GoldenRecord], suite: str = "checks") -> GoldenFile:
    return GoldenFile(provenance=provenance(suite), records=records)


def record(case_id: str, *turns: GoldenTurn) -> GoldenRecord:
    return GoldenRecord(case_id=case_id, turns=list(turns))


# -- suites ---------------------------------------------------------------------------------------


def case(case_id: str = "c", body: dict | None = None, group: str | None = None, **extra: object) -> Case:
    return Case(id=case_id, request=body or request(), group=group, **extra)


def suite(cases: list[Case], families: list[str] | None = None, name: str = "checks") -> Suite:
    return Suite(name=name, version=1, families=families or ["rendering", "parsing", "tools", "effort", "drift"],
                 cases=cases, sha256="0" * 64)


# -- what a provider answered ---------------------------------------------------------------------


def observation(api: Api = "chat", content: str | None = FINAL, reasoning: str | None = REASONING,
                calls: list[ToolCall] | None = None, finish_reason: str | None = None, status: int | None = 200,
                **extra: object) -> Observation:
    """A usable response; finish_reason follows the calls unless given."""
    calls = calls or []
    finish = finish_reason or ("tool_calls" if calls else "stop")
    fields = ["reasoning_content"] if reasoning else []
    return Observation(api=api, stream=False, status=status, content=content, reasoning=reasoning,
                       reasoning_fields=fields, tool_calls=calls, finish_reason=finish, **extra)


def failure(message: str, kind: FailureKind = "protocol", status: int | None = None) -> Failure:
    """Why a call gave no usable answer (for an evidence exchange's `failure`)."""
    return Failure(kind=kind, message=message, status=status)


def failed(status: int | None, message: str = "HTTP 500: internal error", api: Api = "chat",
           kind: FailureKind | None = None) -> Observation:
    """A response that carries no answer: by default an HTTP error status, or (status None) a protocol failure."""
    kind = kind or ("http_status" if status is not None and status >= 400 else "protocol")
    return Observation(api=api, stream=False, status=status, failure=failure(message, kind, status), raw=message)


def usage(prompt_tokens: int | None = None, completion_tokens: int | None = None) -> Usage:
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def exchange(obs: Observation | None, body: dict | None = None, case_id: str = "c", variant: str = "chat",
             turn: int = 1, **extra: object) -> Exchange:
    body = body or request()
    return Exchange(suite="checks", case_id=case_id, variant=variant, turn=turn, request=body, chat_request=body,
                    observation=obs, **extra)


def exchange_view(ex: Exchange, golden: GoldenTurn | None = None, calibration: Calibration | None = None,
                  of_case: Case | None = None) -> ExchangeView:
    """What an exchange check sees: `ex` against `golden` (the turn at the same position of the loop)."""
    turns = [golden] if golden is not None else []
    return ExchangeView(case=of_case or case(ex.case_id, ex.chat_request), exchange=ex, golden=golden,
                        record=record(ex.case_id, *turns), golden_date=DATE, calibration=calibration)


def suite_view(cases: list[Case], records: list[GoldenRecord], exchanges: list[Exchange],
               calibration: Calibration | None = None) -> SuiteView:
    return SuiteView(suite=suite(cases), golden=golden_file(records), exchanges=exchanges, calibration=calibration)


# -- drift evidence -------------------------------------------------------------------------------


def calibration(flip_margin: float = FLIP_MARGIN, boundary: float = BOUNDARY, alpha: float = 0.01,
                greedy: bool = True) -> Calibration:
    """Thresholds as `golden calibrate` writes them: the boundary applies from 16 scored positions."""
    own = Calibration(source="tests/checks", alpha=alpha, flip_margin=flip_margin,
                      logodds_boundary=Boundary(positions=[16], values=[boundary]))
    return own.model_copy(update={"greedy": own.model_copy()}) if greedy else own


def provider_top(s: TokenScore, scale: float = 1.0, flip: bool = False) -> dict[int, float]:
    """A provider's top logprobs at a golden position: golden's log-odds times `scale`; with `flip`,
    golden's top two tokens swapped."""
    top = {t: s.top_logprobs[0] + scale * (lp - s.top_logprobs[0]) for t, lp in zip(s.top_ids, s.top_logprobs)}
    if flip:
        first, second = s.top_ids[0], s.top_ids[1]
        top[first], top[second] = top[second], top[first]
    return top


def scored(turn: GoldenTurn, scale: float = 1.0, flips: tuple[int, ...] = ()) -> ScoreResult:
    """Teacher-forced scores of golden's completion by a provider (see `provider_top`)."""
    positions = []
    for i, s in enumerate(turn.scores):
        top = provider_top(s, scale, flip=i in flips)
        positions.append(PositionScore(token_logprob=top[s.token], top=top))
    return ScoreResult(mode="prompt_logprobs", positions=positions)


def greedy_logprobs(turn: GoldenTurn, scale: float = 1.0, depart_at: int | None = None,
                    skip: int = 0) -> list[TokenLogprob]:
    """Chat `logprobs` of a greedy provider whose distribution is golden's log-odds times `scale`, from
    golden position `skip` (a provider may leave out leading header tokens); at `depart_at` it takes
    golden's runner-up and goes on with text of its own."""
    out = []
    for i, s in enumerate(turn.scores[skip:], skip):
        top = provider_top(s, scale, flip=i == depart_at)
        chosen = max(top, key=top.get)
        out.append(TokenLogprob(token=harmony.token_text(chosen), logprob=top[chosen],
                                top=[TopLogprob(token=harmony.token_text(t), logprob=v) for t, v in top.items()]))
        if i == depart_at:
            return out + [TokenLogprob(token=" and", logprob=-0.1, top=[TopLogprob(token=" and", logprob=-0.1)])]
    return out
