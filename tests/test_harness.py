"""What the real-engine harness shares (`verifier.harness.local`), and how it reads llama-server's replies,
without starting an engine."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from types import SimpleNamespace

import httpx
import pytest

from verifier.errors import ProviderError
from verifier.harness import llama_cpp
from verifier.harness.local import pinned_clock
from verifier.scores import PositionScore


def test_a_pinned_clock_says_its_date_to_a_child_process_and_keeps_monotonic_time_real():
    probe = "import datetime, time; print(datetime.datetime.now().date(), time.monotonic())"
    before = time.monotonic()
    out = subprocess.run([sys.executable, "-c", probe], env=pinned_clock("2026-12-01"), capture_output=True,
                         text=True, check=True).stdout.split()
    after = time.monotonic()
    assert out[0] == "2026-12-01"
    assert before <= float(out[1]) <= after  # CLOCK_MONOTONIC is the system's: a faked one would be offset


def test_a_pinned_clock_refuses_what_is_not_a_date():
    with pytest.raises(ProviderError, match="not a date"):
        pinned_clock("2026-13-01")


# -- llama-server teacher forcing by one-token continuations (replies recorded in llama-server's shape) -------


def _llama(replies: list) -> tuple[SimpleNamespace, list[dict], httpx.MockTransport]:
    """A llama-server stand-in answering /completion with `replies` in turn; the request bodies it saw."""
    seen: list[dict] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        reply = replies[len(seen) - 1]
        return httpx.Response(200, json=reply) if isinstance(reply, dict) else httpx.Response(200, text=reply)

    return SimpleNamespace(url="http://llama.test/v1"), seen, httpx.MockTransport(handle)


PROBS = {"completion_probabilities": [{"id": 5, "logprob": -0.1, "top_logprobs": [
    {"id": 5, "logprob": -0.1, "token": "a"}, {"id": 9, "logprob": -2.5, "token": "b"}]}], "tokens": [5]}


def test_a_pick_llama_server_reports_nothing_for_is_banned_and_asked_again():
    """A token ending inside a UTF-8 character comes back with no probabilities: the position is asked again
    with it banned, and the distribution of the second answer is the position's."""
    server, seen, transport = _llama([{"completion_probabilities": [], "tokens": [7], "content": " \ufffd"}, PROBS])
    positions = llama_cpp.teacher_forcing(server, transport=transport)([1, 2, 3, 9], 3)
    assert positions == [PositionScore(token_logprob=-2.5, top={5: -0.1, 9: -2.5})]
    assert [body["logit_bias"] for body in seen] == [[], [[7, False]]]
    assert seen[0]["prompt"] == [1, 2, 3] and seen[0]["n_predict"] == 1 and seen[0]["n_probs"] == 20


@pytest.mark.parametrize("replies, says", [
    ([{"completion_probabilities": [], "tokens": []}], "no new token to ban"),
    ([{"completion_probabilities": [], "tokens": [7]}, {"completion_probabilities": [], "tokens": [7]}],
     "no new token to ban"),
    (["not json"], "llama-server teacher forcing"),
    ([{"completion_probabilities": [{"id": 5}]}], "KeyError"),
])
def test_a_reply_teacher_forcing_cannot_read_is_a_provider_error(replies, says):
    server, _, transport = _llama(replies)
    with pytest.raises(ProviderError, match=says):
        llama_cpp.teacher_forcing(server, transport=transport)([1, 2], 1)


def test_the_llama_cpp_build_leaves_only_the_unused_libraries_unoptimised(tmp_path, monkeypatch):
    """The compiler launcher appends -O0 to compilations of a source under `UNOPTIMISED` (the argument after -c),
    never to the model's or the server's own sources, even when their include paths name those folders."""
    monkeypatch.setenv("GPT_OSS_VERIFY_LLAMA_CPP_CACHE", str(tmp_path))
    launcher = str(llama_cpp._launcher())

    def compiled(*args: str) -> list[str]:
        return subprocess.run([launcher, "echo", *args], capture_output=True, text=True, check=True).stdout.split()

    mtmd = ["-O3", "-I/s/tools/mtmd/.", "-o", "tools/mtmd/clip.o", "-c", "/s/tools/mtmd/clip.cpp"]
    assert compiled(*mtmd) == [*mtmd, "-O0"]
    httplib = ["-O3", "-c", "/s/vendor/cpp-httplib/httplib.cpp"]
    assert compiled(*httplib) == [*httplib, "-O0"]
    for source in ("/s/tools/server/server.cpp", "/s/src/llama-model.cpp", "/s/ggml/src/ggml-cpu/ops.cpp",
                   "/s/common/chat.cpp"):
        kept = ["-O3", "-I/s/tools/mtmd/.", "-I/s/vendor/cpp-httplib", "-c", source]
        assert compiled(*kept) == kept
