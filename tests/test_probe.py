"""Capabilities are discovered, not assumed (issue 14): the probe finds what each endpoint offers from its
answers and error messages; a run sends only that, skipping the rest as unsupported; `probe` and
`run --dry-run` say what a run would spend; `--max-requests` stops a run resumably."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from conftest import run_cli

from verifier.capabilities import Capabilities
from verifier.cli import _print_survey
from verifier.config import RetryPolicy, RunConfig
from verifier.errors import ProviderUnavailable, UsageError
from verifier.journal import Journal
from verifier.providers import Provider
from verifier.providers.probe import PROBE_FORMAT, Failed, find_cap, probe
from verifier.result import Cost
from verifier.runner import (
    CAPABILITIES_FILE,
    UNSUPPORTED,
    Budget,
    BudgetReached,
    Runner,
    SuitePlan,
    Survey,
    capabilities_of,
    drift_order,
    survey,
    unsupported,
    unsupported_results,
)
from verifier.serve import start_background
from verifier.suites import Case, Suite, load_suite

MODEL = "gpt-oss-conformance"
NO_RETRY = RetryPolicy(attempts=1, base_s=0)

# -- a scripted host (httpx.MockTransport): parsing of answers and error messages -----------------------------


def _host(routes: dict[str, object] | None = None, chat=None, completions=None):
    """A host answering `/models`; `routes` maps a path to (status, message) for every request; `chat` and
    `completions` take a request body and return (status, JSON) to script parameters."""
    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": MODEL}]})
        if routes and path in routes:
            status, message = routes[path]
            return httpx.Response(status, json={"error": {"message": message}})
        body = json.loads(request.content)
        answer = chat if path.endswith("/chat/completions") else completions if path.endswith("/completions") else None
        if answer is None:
            return httpx.Response(404, json={"error": {"message": f"Invalid URL (POST {path})"}})
        status, data = answer(body)
        if body.get("stream") and status == 200:  # one chunk, then the end of the stream
            return httpx.Response(200, text=f"data: {json.dumps(data)}\n\ndata: [DONE]\n\n",
                                  headers={"content-type": "text/event-stream"})
        return httpx.Response(status, json=data)

    return Provider("http://host.test/v1", MODEL, transport=httpx.MockTransport(handle), retry=NO_RETRY)


def _chat_answer(body: dict, cap: int | None = None, field: str = "reasoning_content") -> tuple[int, dict]:
    """A chat host whose `top_logprobs` stop at `cap` (a 400 naming it); reasoning in `field`."""
    k = body.get("top_logprobs") or 0
    if cap is not None and k > cap:
        return 400, {"error": {"message": f"top_logprobs must be less than or equal to {cap}"}}
    top = [{"token": "x", "logprob": -1.0}] * k
    logprobs = {"content": [{"token": "The", "logprob": -0.1, "top_logprobs": top}]} if body.get("logprobs") else None
    return 200, {"choices": [{"message": {"role": "assistant", "content": None, field: "The user"},
                              "logprobs": logprobs, "finish_reason": "length"}]}


def test_a_chat_only_host_offers_chat_and_nothing_it_answers_404_to():
    provider = _host(routes={"/v1/completions": (404, "Not Found"), "/v1/responses": (404, "Not Found"),
                             "/tokenize": (404, "Not Found")},
                     chat=lambda body: _chat_answer(body, cap=5))
    caps = probe(provider)
    assert (caps.chat, caps.responses, caps.completions) == (True, False, False)
    assert caps.responses_stream is False and caps.completions_stream is False
    assert caps.teacher_forcing is False and caps.greedy_logprobs is True
    assert caps.chat_top_logprobs == 5  # the cap the 400 named, confirmed
    assert caps.reasoning_field == "reasoning_content"
    assert caps.prompt_ids_sources == []
    assert "404" in caps.unsupported_reason("completions")
    assert caps.unsupported_reason("chat-stream") is None


def test_a_cap_the_host_does_not_name_is_found_by_trying_5_then_1():
    asked = []

    def send(k: int) -> int:
        asked.append(k)
        if k > 1:
            raise _http_error(400, "invalid value for logprobs")
        return k

    assert find_cap(send, lambda k: k)[0] == 1
    assert asked == [20, 5, 1]


def test_a_parameter_answered_unsupported_is_not_tried_at_other_sizes():
    asked = []

    def send(k: int):
        asked.append(k)
        raise _http_error(400, "logprobs are not supported")

    k, note = find_cap(send, lambda answer: 1)
    assert (k, asked) == (0, [20]) and "not supported" in note


def test_a_parameter_the_host_ignores_is_not_offered():
    assert find_cap(lambda k: {}, lambda answer: None)[0] == 0


def test_a_host_that_cuts_the_list_short_has_the_cap_it_returns():
    assert find_cap(lambda k: k, lambda asked: min(asked, 8))[0] == 8


def test_a_server_error_leaves_a_capability_unknown_and_an_outage_is_not_unsupported():
    def crash(k: int):
        raise _http_error(500, "Internal Server Error")

    def refuse(request: httpx.Request):
        raise httpx.ConnectError("connection refused")

    assert find_cap(crash, lambda answer: 1)[0] is None
    down = Provider("http://host.test/v1", MODEL, retry=NO_RETRY, transport=httpx.MockTransport(refuse))
    with pytest.raises(ProviderUnavailable):
        probe(down)


def test_a_request_that_finds_no_service_leaves_only_its_capability_unknown():
    def rate_limited(body: dict) -> tuple[int, dict]:
        if body.get("stream"):
            return 429, {"error": {"message": "Rate limit reached"}}
        return _chat_answer(body)

    caps = probe(_host(chat=rate_limited))
    assert caps.chat is True and caps.chat_stream is None and "Rate limit" in caps.notes["chat_stream"]
    assert caps.completions is False


def test_string_only_completions_with_capped_echo():
    def completions(body: dict) -> tuple[int, dict]:
        if not isinstance(body["prompt"], str):
            return 400, {"error": {"message": "prompt must be a string"}}
        if body.get("prompt_logprobs") is not None:
            return 400, {"error": {"message": "Unrecognized request argument supplied: prompt_logprobs"}}
        k = body.get("logprobs") or 0
        if k > 5:
            return 400, {"error": {"message": "logprobs: must be at most 5"}}
        n = 7 if body.get("echo") else 1
        logprobs = {"tokens": ["a"] * n, "token_logprobs": [None] + [-1.0] * (n - 1),
                    "top_logprobs": [None] + [{str(i): -1.0 for i in range(k + 1)}] * (n - 1)} if k else None
        return 200, {"choices": [{"text": "a", "logprobs": logprobs, "finish_reason": "length"}]}

    caps = probe(_host(chat=_chat_answer, completions=completions))
    assert caps.completions is True and caps.token_id_prompts is False
    assert (caps.prompt_logprobs, caps.echo_logprobs) == (0, 5)
    assert caps.teacher_forcing is True
    assert "prompt must be a string" in caps.unsupported_reason("completions")


# Recorded shapes of answers that accept k but carry no alternatives: the chosen token's own logprob is top-1
# at best; no number at all is nothing.
CHOSEN_ONLY = {"content": [{"token": "The", "logprob": -0.01, "bytes": [84, 104, 101], "top_logprobs": []},
                           {"token": " user", "logprob": -0.2, "bytes": [32, 117], "top_logprobs": []}]}
NUMBERLESS = {"content": [{"token": "The", "logprob": None, "top_logprobs": []}]}


@pytest.mark.parametrize("logprobs, top, offered", [(CHOSEN_ONLY, 1, True), (NUMBERLESS, None, None)])
def test_empty_chat_top_lists_are_top_1_at_best(logprobs, top, offered):
    caps = probe(_host(chat=_chat_with(lambda body: {"logprobs": logprobs})))
    assert (caps.chat_top_logprobs, caps.chat_logprobs) == (top, offered), caps.notes


def _completions_scoring(prompt_logprobs: list, echo: dict):
    """A completions host answering `prompt_logprobs` and `echo` + `logprobs` with these recorded shapes."""
    def completions(body: dict) -> tuple[int, dict]:
        choice = {"index": 0, "text": "a", "finish_reason": "length", "logprobs": None}
        if body.get("prompt_logprobs") is not None:
            choice["prompt_logprobs"] = prompt_logprobs
        if body.get("echo"):
            choice["logprobs"] = echo
        return 200, {"object": "text_completion", "choices": [choice]}
    return completions


def _echoed(token_logprob: float | None, top: dict | None) -> dict:
    n = 6  # five prompt tokens and the generated one
    return {"tokens": ["<|start|>", "user", "<|message|>", "Hi", "<|end|>", "The"], "text_offset": list(range(n)),
            "token_logprobs": [None] + [token_logprob] * (n - 1), "top_logprobs": [None] + [top] * (n - 1)}


@pytest.mark.parametrize("prompt_logprobs, echo, found", [
    ([None, {"1": {"logprob": -1.0, "rank": 3, "decoded_token": "x"}}], _echoed(-1.0, {}), (1, 1)),
    ([None, {"1": {"logprob": -1.0}, "2": {"logprob": -0.5}}], _echoed(-1.0, None), (2, 1)),
    ([None, {}, {}], _echoed(None, {}), (0, 0)),
])
def test_empty_prompt_top_lists_are_top_1_at_best_and_none_without_numbers(prompt_logprobs, echo, found):
    caps = probe(_host(chat=_chat_with(), completions=_completions_scoring(prompt_logprobs, echo)))
    assert caps.completions is True and (caps.prompt_logprobs, caps.echo_logprobs) == found, caps.notes


def test_a_host_with_no_api_at_all_is_refused_in_one_line():
    provider = _host(routes={p: (404, "Not Found") for p in ("/v1/chat/completions", "/v1/responses",
                                                               "/v1/completions", "/tokenize")})
    with pytest.raises(UsageError, match="offers no chat, responses or completions API"):
        probe(provider)


def test_drift_starts_from_what_the_endpoint_offers():
    chat_only = Capabilities(chat=True, chat_logprobs=False, completions=False, notes={"completions": "HTTP 404"})
    assert drift_order(chat_only, "auto")[0] == ["sampling"]
    assert set(drift_order(chat_only, "auto")[1]) == {"teacher", "greedy"}
    strings = Capabilities(chat=True, chat_logprobs=True, completions=True, token_id_prompts=False,
                           prompt_logprobs=0, echo_logprobs=5)
    assert drift_order(strings, "auto")[0] == ["teacher", "greedy", "sampling"]
    assert drift_order(None, "auto")[0] == ["teacher", "greedy", "sampling"]  # not probed: everything is tried
    assert drift_order(chat_only, "teacher") == ([], {"teacher": "/v1/completions (HTTP 404)"})


def test_budget():
    assert Budget().reached(Cost(requests=10**6)) is None
    assert "--max-requests 3" in Budget(max_requests=3).reached(Cost(requests=3))
    assert Budget(max_tokens=100).reached(Cost(prompt_tokens=60, completion_tokens=39)) is None
    assert "--max-tokens 100" in Budget(max_tokens=100).reached(Cost(prompt_tokens=60, completion_tokens=40))


def test_the_probe_s_requests_and_tokens_count_towards_the_budget(tmp_path):
    """The probe always finishes; what it spent (requests, tokens its answers report) is the budget's first
    spending, so a budget of exactly that stops the run before its first request. Capabilities read from a
    run directory (`--resume`) cost nothing."""
    answered = []

    def chat(body):
        if "return_token_ids" in body:  # as OpenAI answers a parameter it does not know
            return 400, {"error": {"message": "Unrecognized request argument supplied: return_token_ids"}}
        status, data = _chat_answer(body)
        answered.append(status)
        return status, {**data, "usage": {"prompt_tokens": 10, "completion_tokens": 2}}

    provider = _host(chat=chat)
    caps, probed = capabilities_of(provider)
    assert probed.requests == caps.requests > len(answered) > 0  # responses, completions, tokenize: 404
    assert (probed.prompt_tokens, probed.completion_tokens) == (10 * len(answered), 2 * len(answered))
    suite = load_suite("harmony")
    first, second = suite.cases[:2]
    for budget in (Budget(max_requests=probed.requests), Budget(max_tokens=12 * len(answered))):
        runner = Runner(provider, Journal(tmp_path / "journal.jsonl"), capabilities=caps, budget=budget, spent=probed)
        with pytest.raises(BudgetReached, match="the probe's included"):
            runner.run_loop(suite, first, "chat", "2025-01-01")
    runner = Runner(provider, Journal(tmp_path / "journal.jsonl"), capabilities=caps,
                    budget=Budget(max_requests=probed.requests + 1), spent=probed)
    assert len(runner.run_loop(suite, first, "chat", "2025-01-01")) == 1
    with pytest.raises(BudgetReached):
        runner.run_loop(suite, second, "chat", "2025-01-01")
    (tmp_path / CAPABILITIES_FILE).write_text(caps.model_dump_json())
    sent = len(answered)
    assert capabilities_of(provider, tmp_path) == (caps, Cost()) and len(answered) == sent


DIRTY = "logprobs \x1b[31mare not\r supported\x1b[0m\x1b]0;title\x07 here\x9b2J\u202e"
"""A refusal with terminal escapes (colour, a window title, a one-byte CSI clearing the screen), a carriage
return and a bidi override: printed raw, it would rewrite the user's terminal."""
SHOWN = "logprobs are not supported here"


def _clean(text: str) -> bool:
    return not any(c in text for c in "\x1b\r\x07\x9b\u202e")


def test_provider_text_is_made_printable_before_it_is_stored_in_capabilities():
    caps = probe(_host(chat=_chat_with(refuse=lambda body: (400, DIRTY) if body.get("logprobs") else None)))
    assert caps.chat_logprobs is False and SHOWN in caps.notes["chat_logprobs"]
    assert all(_clean(note) for note in caps.notes.values()), caps.notes
    raw = Failed(400, f"<html>\r\n{DIRTY}</html>")  # a body that is not JSON, kept as it came
    assert raw.not_offered and _clean(raw.note()) and SHOWN in raw.note()


def test_capability_notes_are_printed_printable(capsys):
    """Capabilities read back from a run directory may hold what an older version stored raw."""
    caps = Capabilities(chat=True, chat_logprobs=False, notes={"chat_logprobs": f"HTTP 400: {DIRTY}"})
    plan = SuitePlan(suite="harmony", requests=1, tokens=1, unsupported=[f"chat logprobs (HTTP 400: {DIRTY})"])
    _print_survey(Survey(base_url="http://host.test/v1", model=MODEL, capabilities=caps, plans=[plan]))
    printed = capsys.readouterr().out
    assert _clean(printed) and printed.count(SHOWN) == 2


def _http_error(status: int, message: str):
    from verifier.errors import ProviderHTTPError

    return ProviderHTTPError(status, json.dumps({"error": {"message": message}}), "http://host.test/v1/x")


# -- the built-in provider and its surfaces (real loopback servers) -------------------------------------------


def test_the_honest_builtin_provider_offers_everything(provider):
    caps = probe(provider)
    assert caps.requests <= 20
    offered = {name: getattr(caps, name) for name in ("chat", "chat_stream", "responses", "responses_stream",
                                                      "completions", "completions_stream", "token_id_prompts",
                                                      "chat_logprobs")}
    assert all(offered.values()), offered
    assert (caps.prompt_logprobs, caps.echo_logprobs, caps.chat_top_logprobs) == (20, 20, 20)
    assert caps.prompt_ids_sources == ["return_token_ids", "tokenize"]
    assert caps.reasoning_field == "reasoning"
    assert caps.tool_choice == {"string": True, "named": True}
    assert caps.response_format is True


SURFACES = {
    "chat-only": dict(completions=False, token_id_prompts=False, prompt_logprobs=0, echo_logprobs=0,
                      chat_logprobs=False, chat_top_logprobs=0, prompt_ids_sources=[], responses=True),
    "string-completions": dict(completions=True, token_id_prompts=False, prompt_logprobs=0, echo_logprobs=5,
                               chat_logprobs=True, chat_top_logprobs=5, prompt_ids_sources=[], responses=True),
    "capped-logprobs": dict(completions=True, token_id_prompts=True, prompt_logprobs=5, echo_logprobs=5,
                            chat_logprobs=True, chat_top_logprobs=5, prompt_ids_sources=["return_token_ids", "tokenize"],
                            responses=True),
}


@pytest.mark.parametrize("surface", SURFACES)
def test_the_probe_finds_exactly_what_each_surface_offers(checkpoint, surface):
    with start_background(checkpoint, MODEL, surfaces=[surface]) as server:
        endpoint = Provider(server.url, MODEL)
        caps = probe(endpoint)
        endpoint.close()
    assert {name: getattr(caps, name) for name in SURFACES[surface]} == SURFACES[surface], caps.notes
    assert caps.chat and caps.chat_stream and caps.responses_stream


def test_the_plan_leaves_out_what_the_surface_does_not_offer():
    """Planned requests on chat-only = the full plan less every completions tool loop and prompt-ids request."""
    full = survey(RunConfig(suites=["harmony"])).plans[0]
    narrow = survey(RunConfig(suites=["harmony"], surfaces=["chat-only"])).plans[0]
    from verifier.golden import load
    from verifier.paths import golden_dir

    golden = load(golden_dir() / MODEL / "fp32" / "harmony.json")
    suite = load_suite("harmony")
    completions_turns = sum(len(golden.record(c.id).turns) for c in suite.cases)
    assert full.requests - narrow.requests == completions_turns + len(suite.cases)
    assert full.unsupported == [] and any("/v1/completions" in r for r in narrow.unsupported)


# -- the CLI: a run on chat-only, a dry run, a budget -------------------------------------------------------


def _result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def _run_dir(text: str) -> Path:
    return Path(re.search(r"(?:report: |--resume )(\S+?)(?:/report\.html)?$", text, re.M).group(1))


def test_a_chat_only_endpoint_passes_with_completions_skipped_as_unsupported(tmp_path):
    proc = run_cli("run", "--surface", "chat-only", "--suite", "harmony", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = _result(_run_dir(proc.stdout))
    assert "completions" not in result["apis"] and result["capabilities"]["completions"] is False
    skipped = [o for c in result["checks"] for o in c["outcomes"] if o["variant"] == "completions"]
    assert skipped and all(o["verdict"] == "skip" and o["message"].startswith("unsupported by this endpoint: ")
                           for o in skipped)
    assert {c["id"]: c["verdict"] for c in result["checks"]}["parsing.http_status"] == "pass"
    report = (_run_dir(proc.stdout) / "report.html").read_text()
    assert "Capabilities" in report and "not offered" in report


def test_a_dry_run_prints_capabilities_and_cost_and_sends_nothing_else(tmp_path):
    proc = run_cli("run", "--dry-run", "--surface", "chat-only", "--suite", "harmony", "--suite", "drift",
                   "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"/v1/completions\s+not offered", proc.stdout)
    assert re.search(r"^harmony\s+\d+\s+[\d,]+\s+-$", proc.stdout, re.M)
    assert re.search(r"^drift\s+\d+\s+[\d,]+\s+sampling$", proc.stdout, re.M)  # no logprobs: sampling
    assert re.search(r"^total\s+\d+", proc.stdout, re.M)
    assert list(tmp_path.iterdir()) == []  # no run directory: nothing was run


def test_a_run_stops_at_its_budget_and_resume_finishes_it(tmp_path):
    """The probe's requests count towards the budget: a budget of the probe's requests and 5 more journals 5."""
    probed = survey(RunConfig(suites=["harmony"])).capabilities.requests
    proc = run_cli("run", "--suite", "harmony", "--out", str(tmp_path), "--max-requests", str(probed + 5))
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and f"budget reached: --max-requests {probed + 5}" in line, proc.stderr
    run_dir = _run_dir(line)
    assert len((run_dir / "journal.jsonl").read_text().splitlines()) == 5
    assert not (run_dir / "result.json").exists()
    done = run_cli("run", "--resume", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 exchanges replayed from the journal" in done.stderr + done.stdout
    assert _result(run_dir)["capabilities"]["completions"] is True


def _chat_with(answer_logprobs=None, refuse=None):
    """A chat host: `refuse(body)` -> (status, message) or None; logprobs in the answer from `answer_logprobs`."""
    def chat(body: dict) -> tuple[int, dict]:
        if refuse and (refused := refuse(body)):
            return refused[0], {"error": {"message": refused[1]}}
        extra = answer_logprobs(body) if answer_logprobs and body.get("logprobs") else {}
        return 200, {"choices": [{"message": {"role": "assistant", "content": None, "reasoning": "The user"},
                                  "finish_reason": "length", **extra}]}
    return chat


def test_a_refused_parameter_is_not_a_missing_endpoint():
    """`Unsupported parameter: 'temperature'` says the endpoint exists; only 404/405/501 (or a message about
    the route) make a whole API unsupported, so a host's parameter quirk never skips every chat check."""
    provider = _host(chat=_chat_with(refuse=lambda body: (400, "Unsupported parameter: 'temperature'")
                                     if "temperature" in body else None),
                     routes={"/v1/responses": (404, "Not Found")})
    caps = probe(provider)
    assert caps.chat is True and caps.responses is False


def test_reasoning_logprobs_reported_apart_count_as_chat_logprobs():
    """A host that reports the generated reasoning tokens' logprobs in `reasoning_logprobs` (content is
    empty in a few tokens) offers chat logprobs."""
    def logprobs(body):
        top = [{"token": "x", "logprob": -1.0}] * body.get("top_logprobs", 0)
        return {"logprobs": {"content": None},
                "reasoning_logprobs": {"content": [{"token": "The", "logprob": -0.1, "top_logprobs": top}]}}
    caps = probe(_host(chat=_chat_with(logprobs)))
    assert caps.chat_logprobs is True and caps.chat_top_logprobs == 20


def test_logprobs_accepted_but_absent_from_a_short_answer_are_undecided():
    """Some hosts report logprobs for content tokens only; a few tokens of reasoning carry none. That does
    not show the host has no logprobs: undecided, so the run still tries greedy logprobs."""
    caps = probe(_host(chat=_chat_with(lambda body: {"logprobs": {"content": []}})))
    assert caps.chat_logprobs is None and caps.chat_top_logprobs is None


def test_a_tool_choice_form_is_unsupported_only_when_the_refusal_says_so():
    def refuse_named(message):
        return lambda body: (400, message) if isinstance(body.get("tool_choice"), dict) else None
    said = probe(_host(chat=_chat_with(refuse=refuse_named("tool_choice object is not supported"))))
    assert said.tool_choice == {"string": True, "named": False}
    other = probe(_host(chat=_chat_with(refuse=refuse_named("Could not parse the tool call"))))
    assert other.tool_choice == {"string": True, "named": None}  # left to the run: a finding if it recurs there


# -- response_format: a refusal that says so skips the structured-output requests on Chat ---------------------


def _refusing_format(message: str):
    return lambda body: (400, message) if "response_format" in body else None


def test_a_response_format_is_unsupported_only_when_the_refusal_says_so():
    said = probe(_host(chat=_chat_with(refuse=_refusing_format("response_format json_schema is not supported"))))
    assert said.response_format is False and "not supported" in said.notes["response_format"]
    other = probe(_host(chat=_chat_with(refuse=_refusing_format("Invalid JSON schema: bad type"))))
    assert other.response_format is None  # left to the run: a finding if it recurs there
    assert probe(_host(chat=_chat_with())).response_format is True


def test_a_refused_response_format_skips_structured_requests_on_chat_only():
    """The structured checks of a json_schema case SKIP on Chat, with the host's reason, where the probe found
    response_format refused; Responses and raw prompts are still sent, and cases without one are untouched."""
    question = {"messages": [{"role": "user", "content": "Capital of France as JSON?"}]}
    structured = Case(id="rf", request={**question, "response_format": PROBE_FORMAT})
    plain = Case(id="plain", request=question)
    caps = Capabilities(response_format=False, notes={"response_format": "HTTP 400: response_format is not supported"})
    assert unsupported(caps, structured, "chat") == "response_format json_schema (HTTP 400: response_format is not supported)"
    assert [unsupported(caps, structured, v) for v in ("responses", "completions")] == [None, None]
    assert unsupported(caps, plain, "chat") is None
    suite = Suite(name="s", version=1, families=["structured"], cases=[structured, plain], sha256="0" * 64)
    skipped = {r.id: r for r in unsupported_results(suite, ["chat", "responses"], caps, None)}
    assert {"structured.valid_json", "structured.schema_valid", "structured.final_only"} <= set(skipped)
    for result in skipped.values():
        assert [(o.case_id, o.variant) for o in result.outcomes] == [("rf", "chat")]
        assert result.outcomes[0].message.startswith(UNSUPPORTED) and result.verdict.value == "skip"
