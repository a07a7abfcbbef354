"""Surface modes of the built-in provider (`--surface`): each hosted-API shape of issue 14 answered as
those hosts answer, on a real loopback server, and usable together with a perturbed checkpoint."""

from __future__ import annotations

import collections
import json
import re
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import one_line_exit_2, run_cli
from openai_harmony import HarmonyEncodingName, load_harmony_encoding

from verifier import harmony
from verifier.errors import UsageError
from verifier.golden import load
from verifier.paths import golden_dir
from verifier.serve import start_background
from verifier.serve.surfaces import Flaky, Offer, parse_surfaces
from verifier.suites import load_suite

MODEL = "gpt-oss-conformance"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


@contextmanager
def _served(checkpoint, *surfaces: str, faults: list[str] | None = None, quirks: list[str] | None = None):
    """A client of the built-in provider with these surfaces (at its root, not /v1); both closed after."""
    running = start_background(checkpoint, MODEL, faults, surfaces=list(surfaces), quirks=quirks)
    client = httpx.Client(base_url=running.url.removesuffix("/v1"), timeout=60)
    try:
        yield client
    finally:
        client.close()
        running.stop()


@pytest.fixture(scope="module")
def chat_only(checkpoint):
    with _served(checkpoint, "chat-only", quirks=["reasoning-content-only"]) as client:
        yield client


@pytest.fixture(scope="module")
def strings(checkpoint):
    with _served(checkpoint, "string-completions") as client:
        yield client


@pytest.fixture(scope="module")
def capped(checkpoint):
    with _served(checkpoint, "capped-logprobs") as client:
        yield client


@pytest.fixture(scope="module")
def drift_turn():
    """A golden drift turn: prompt + completion ids and the reference's scores of the completion."""
    return load(golden_dir() / MODEL / "fp32" / "drift.json").records[0].turns[0]


@pytest.fixture(scope="module")
def reference():
    harmony.ensure_vocab()
    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


def _error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    return r.json()["error"]["message"]


# -- parsing the names ----------------------------------------------------------------------------


def test_default_offers_everything():
    assert parse_surfaces(None) == Offer()


@pytest.mark.parametrize("specs,expected", [
    (["capped-logprobs:1"], {"cap": 1, "prompt_logprobs": True}),
    (["string-completions"], {"cap": 5, "token_id_prompts": False, "prompt_logprobs": False, "tokenize": False}),
    (["chat-only", "random-5xx"], {"completions": False, "chat_logprobs": False, "error_rate": 0.2}),
    (["random-5xx:0.3:7"], {"error_rate": 0.3, "seed": 7, "completions": True}),
    (["inline-reasoning", "chat-only"], {"inline_reasoning": True, "completions": False}),
])
def test_surface_specs(specs, expected):
    offer = parse_surfaces(specs)
    assert {k: getattr(offer, k) for k in expected} == expected


@pytest.mark.parametrize("specs,needle", [
    (["hosted"], "unknown surface 'hosted'"),
    (["chat-only", "capped-logprobs"], "conflict"),
    (["capped-logprobs:x"], "not an integer"),
    (["random-5xx:1.5"], "[0, 1)"),
    (["chat-only:3"], "usage chat-only"),
    (["inline-reasoning:1"], "usage inline-reasoning"),
])
def test_bad_surface_specs_are_usage_errors(specs, needle):
    with pytest.raises(UsageError, match=needle.replace("[", r"\[").replace(")", r"\)")):
        parse_surfaces(specs)


def test_cli_refuses_an_unknown_surface_in_one_line():
    assert "unknown surface 'hosted'" in one_line_exit_2(run_cli("serve", "--surface", "hosted", timeout=120))


# -- chat-only ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/completions", "/tokenize"])
def test_chat_only_has_no_completions_or_tokenize(chat_only, path):
    r = chat_only.post(path, json={"model": MODEL, "prompt": "Hi", "max_tokens": 1})
    assert "Invalid URL" in _error(r, 404)


@pytest.mark.parametrize("extra", [{"logprobs": True}, {"logprobs": True, "top_logprobs": 2}, {"top_logprobs": 0}])
def test_chat_only_refuses_logprobs(chat_only, extra):
    r = chat_only.post("/v1/chat/completions", json=CHAT | extra)
    assert _error(r, 400) == "logprobs are not supported"
    assert r.json()["error"]["param"] == "logprobs"


def test_chat_only_serves_chat_and_responses_with_reasoning_in_the_quirks_field(chat_only):
    case = load_suite("tools").cases[0].request
    chat = chat_only.post("/v1/chat/completions", json=case | {"model": MODEL, "return_token_ids": True})
    assert chat.status_code == 200, chat.text
    message = chat.json()["choices"][0]["message"]
    assert message["reasoning_content"] and "reasoning" not in message
    assert "prompt_token_ids" not in chat.json() and chat.json()["choices"][0]["logprobs"] is None
    responses = chat_only.post("/v1/responses", json=harmony.chat_to_responses(case) | {"model": MODEL})
    assert responses.status_code == 200 and responses.json()["output"]


# -- string-completions ---------------------------------------------------------------------------


def test_strings_refuse_token_id_prompts(strings, drift_turn):
    r = strings.post("/v1/completions", json={"model": MODEL, "prompt": drift_turn.prompt_token_ids, "max_tokens": 1})
    assert _error(r, 400) == "prompt must be a string"


@pytest.mark.parametrize("path,body,status,message", [
    ("/v1/completions", {"prompt": "Hi", "echo": True, "logprobs": 6, "max_tokens": 0}, 400,
     "logprobs must be at most 5"),
    ("/v1/completions", {"prompt": "Hi", "prompt_logprobs": 1, "max_tokens": 0}, 400,
     "prompt_logprobs is not supported"),
    ("/v1/chat/completions", CHAT | {"logprobs": True, "top_logprobs": 6}, 400, "top_logprobs must be at most 5"),
    ("/tokenize", {"prompt": "Hi"}, 404, "Invalid URL (POST /tokenize)"),
])
def test_strings_refusals(strings, path, body, status, message):
    assert _error(strings.post(path, json={"model": MODEL} | body), status) == message


def test_strings_echo_scores_the_prompt_as_openai_legacy(strings, drift_turn, reference):
    """The Harmony-rendered prompt and golden completion as text: the echoed tokens are openai-harmony's
    tokenisation of that text (specials allowed), scored as the reference scores them."""
    ids = drift_turn.prompt_token_ids + drift_turn.completion_token_ids
    text = reference.decode(ids)
    assert reference.encode(text, allowed_special="all") == ids
    r = strings.post("/v1/completions", json={"model": MODEL, "prompt": text, "echo": True, "logprobs": 5,
                                              "max_tokens": 0, "return_token_ids": True})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    lp = choice["logprobs"]
    assert lp["tokens"] == [reference.decode([t]) for t in ids]
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert lp["text_offset"] == [sum(len(t) for t in lp["tokens"][:i]) for i in range(len(ids))]
    start = len(drift_turn.prompt_token_ids)
    for ref, got, top, token in zip(drift_turn.scores, lp["token_logprobs"][start:], lp["top_logprobs"][start:],
                                    lp["tokens"][start:]):
        assert got == pytest.approx(ref.logprob, abs=1e-4)
        assert len(top) <= 6 and top[token] == got  # top-5 and the chosen token, as OpenAI's legacy API
        assert {reference.decode([t]) for t in ref.top_ids[:3]} <= set(top)
    assert "prompt_token_ids" not in choice and "token_ids" not in choice


def test_strings_chat_top_logprobs_up_to_the_cap(strings):
    r = strings.post("/v1/chat/completions", json=CHAT | {"logprobs": True, "top_logprobs": 5})
    assert r.status_code == 200, r.text
    content = r.json()["choices"][0]["logprobs"]["content"]
    assert content and all(len(c["top_logprobs"]) == 5 for c in content)


# -- capped-logprobs ------------------------------------------------------------------------------


@pytest.mark.parametrize("path,body,name", [
    ("/v1/completions", {"prompt": [200006, 1428], "prompt_logprobs": 6, "max_tokens": 0}, "prompt_logprobs"),
    ("/v1/completions", {"prompt": [200006, 1428], "logprobs": 20, "max_tokens": 1}, "logprobs"),
    ("/v1/chat/completions", CHAT | {"logprobs": True, "top_logprobs": 20}, "top_logprobs"),
])
def test_capped_refuses_more_than_five(capped, path, body, name):
    r = capped.post(path, json={"model": MODEL} | body)
    assert _error(r, 400) == f"{name} must be at most 5" and r.json()["error"]["param"] == name


def test_capped_serves_token_ids_and_prompt_logprobs_up_to_the_cap(capped, drift_turn):
    ids = drift_turn.prompt_token_ids + drift_turn.completion_token_ids
    r = capped.post("/v1/completions", json={"model": MODEL, "prompt": ids, "prompt_logprobs": 5, "max_tokens": 0,
                                             "return_token_ids": True})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["prompt_token_ids"] == ids and len(choice["prompt_logprobs"]) == len(ids)
    last = choice["prompt_logprobs"][-1]
    assert last[str(ids[-1])]["logprob"] == pytest.approx(drift_turn.scores[-1].logprob, abs=1e-4)
    assert capped.post("/tokenize", json={"prompt": "Hi"}).status_code == 200


# -- random-5xx -----------------------------------------------------------------------------------


def test_flaky_draws_are_seeded_per_server():
    a, b = Flaky(0.5, seed=3), Flaky(0.5, seed=3)
    assert [a.draw() for _ in range(50)] == [b.draw() for _ in range(50)]
    assert Flaky(0.0).draw() is None


def test_random_5xx_rate_within_a_binomial_band(checkpoint):
    with _served(checkpoint, "random-5xx:0.3:11") as client:
        answers = [client.post("/tokenize", json={"prompt": "Hi"}) for _ in range(200)]
        statuses = collections.Counter(r.status_code for r in answers)
        models = {client.get("/v1/models").status_code for _ in range(20)}
    failed = statuses[500] + statuses[429]
    assert set(statuses) == {200, 500, 429}
    assert 34 <= failed <= 86  # n=200, p=0.3: mean 60, sd 6.5, a band of 4 sd
    assert all(r.headers["retry-after"] == "0" for r in answers if r.status_code == 429)
    assert all(r.json()["error"]["type"] == "server_error" for r in answers if r.status_code == 500)
    assert models == {200}


# -- together with a perturbed checkpoint ---------------------------------------------------------


def _echo_logprobs(client: httpx.Client, ids: list[int]) -> list[float]:
    r = client.post("/v1/completions", json={"model": MODEL, "prompt": harmony.decode(ids), "echo": True,
                                             "logprobs": 1, "max_tokens": 0})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["logprobs"]["token_logprobs"][1:]


@pytest.mark.parametrize("fault", ["int4-experts", "no-sinks", "swapped-checkpoint"])
def test_string_surface_serves_a_perturbed_checkpoint(checkpoint, strings, drift_turn, fault):
    """A perturbed checkpoint behind the string surface: the echoed scores depart from the honest ones."""
    ids = drift_turn.prompt_token_ids + drift_turn.completion_token_ids
    with _served(checkpoint, "string-completions", "random-5xx:0.0", faults=[fault]) as client:
        perturbed = _echo_logprobs(client, ids)
    honest = _echo_logprobs(strings, ids)
    assert max(abs(p - h) for p, h in zip(perturbed, honest)) > 0.5


# -- inline-reasoning -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inline(checkpoint):
    with _served(checkpoint, "inline-reasoning") as client:
        yield client


def _sse_chunks(r: httpx.Response) -> list[dict]:
    lines = [line.removeprefix("data: ") for line in r.text.splitlines() if line.startswith("data: ")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


def test_inline_reasoning_opens_the_content_and_no_field_carries_it(inline):
    case = load_suite("tools").cases[0].request | {"model": MODEL, "temperature": 0}
    message = inline.post("/v1/chat/completions", json=case).json()["choices"][0]["message"]
    assert not {"reasoning", "reasoning_content"} & set(message)
    reasoning, answer = harmony.split_inline_reasoning(message["content"])
    assert reasoning and message["content"].startswith("<reasoning>")
    streamed = _sse_chunks(inline.post("/v1/chat/completions", json=case | {"stream": True}))
    deltas = [c["choices"][0]["delta"] for c in streamed if c["choices"]]
    pieces = [d["content"] for d in deltas if d.get("content")]
    assert not any({"reasoning", "reasoning_content"} & set(d) for d in deltas)
    assert "<reasoning>" not in pieces[0] and "".join(pieces).startswith("<reasoning>")  # the tag split
    assert harmony.split_inline_reasoning("".join(pieces)) == (reasoning, answer)


def test_inline_reasoning_sent_back_is_rendered_as_reasoning(inline):
    """The surface reads an assistant message's inline reasoning as the analysis it was."""
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    field = [*messages, {"role": "assistant", "content": "Sunny.", "reasoning": "Think."}, {"role": "user", "content": "Ok"}]
    inline_sent = [*messages, {"role": "assistant", "content": "<reasoning>Think.</reasoning>Sunny."},
                   {"role": "user", "content": "Ok"}]
    tokens = [inline.post("/tokenize", json={"messages": m}).json()["tokens"] for m in (field, inline_sent)]
    assert tokens[0] == tokens[1]


def _run_dir(stdout: str) -> Path:
    return Path(re.search(r"^report: (\S+)/report\.html$", stdout, re.M).group(1))


def test_an_honest_run_on_inline_reasoning_passes(tmp_path):
    """The tools suite (tool loops sending reasoning back) on chat, with reasoning inline: exit 0, no failed
    check, the probe and the run both saw the inline form, and follow-ups carried reasoning back inline."""
    proc = run_cli("run", "--surface", "inline-reasoning", "--suite", "tools", "--api", "chat", "--api", "chat-stream",
                   "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = _run_dir(proc.stdout)
    result = json.loads((run_dir / "result.json").read_text())
    assert [c["id"] for c in result["checks"] if c["verdict"] == "fail"] == []
    assert result["capabilities"]["reasoning_field"] == "inline"
    separated = next(c for c in result["checks"] if c["id"] == "parsing.reasoning_separated")
    assert separated["verdict"] == "pass" and "inline" in json.dumps(separated)
    exchanges = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    sent_back = [m for ex in exchanges if ex.get("turn", 1) > 1 for m in ex["request"]["messages"]
                 if m["role"] == "assistant"]
    assert not any({"reasoning", "reasoning_content"} & set(m) for m in sent_back)
    inline_back = [m for m in sent_back if m["content"] is not None]  # `loop-without-reasoning` sends none back
    assert inline_back and all(m["content"].startswith("<reasoning>") for m in inline_back)
