"""The built-in reference provider: an OpenAI-compatible server backed by the reference engine.

Endpoints: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions`,
`POST /v1/responses` (all with streaming) and `POST /tokenize`. Prompts are rendered with
openai-harmony exactly as golden records are (`verifier.harmony`), with today's date unless a date
is pinned; completions are parsed with openai-harmony. Fault modes (`verifier.serve.faults`)
switch on defects seen in real providers.
"""

from __future__ import annotations

import datetime
import json
import time
import uuid
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import verifier.serve.faults as fault_modes
import verifier.serve.render as render
import verifier.serve.surfaces as surfaces
from verifier import harmony
from verifier.reference.build import reasoning_token_count
from verifier.reference.engine import Engine, Generation

MAX_TOKENS_DEFAULT = 1024


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def error_response(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                   headers: dict[str, str] | None = None):
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}},
                        status_code=status, headers=headers)


@dataclass
class Settings:
    model: str
    faults: frozenset[str]
    quirks: frozenset[str] = frozenset()
    date: str | None = None
    """Pinned conversation date; None renders today's date (UTC), as real servers do."""
    offer: surfaces.Offer = field(default_factory=surfaces.Offer)
    """The API surface served (`--surface`): by default everything."""

    def today(self) -> str:
        return self.date or datetime.datetime.now(datetime.UTC).date().isoformat()


def _int(body: dict, *names: str, default: int | None = None) -> int | None:
    for name in names:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise BadRequest(f"{name} must be a non-negative integer", name)
            return value
    return default


def _sampling(body: dict) -> dict:
    temperature = body.get("temperature", 1.0)
    top_p = body.get("top_p", 1.0)
    if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise BadRequest("temperature must be between 0 and 2", "temperature")
    if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise BadRequest("top_p must be in (0, 1]", "top_p")
    seed = body.get("seed")
    return {"temperature": float(temperature), "top_p": float(top_p), "seed": seed if isinstance(seed, int) else None}


class Server:
    """Request handling around one engine."""

    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.settings = settings

    def assistant_turn(self, chat_body: dict, sampling_body: dict, top_logprobs: int, max_names: tuple[str, ...]):
        """Render, decode and parse one assistant turn: (prompt, generation, reply)."""
        faults, quirks = self.settings.faults, self.settings.quirks
        fault_modes.check_request(chat_body, faults)
        prompt = fault_modes.render(chat_body, self.settings.today(), faults)
        stops, transform = fault_modes.decoding(chat_body, faults)
        max_tokens = _int(sampling_body, *max_names, default=MAX_TOKENS_DEFAULT)
        gen = self.engine.generate(prompt, max_tokens, stops, k=top_logprobs, transform=transform,
                                   **_sampling(sampling_body))
        emitted = fault_modes.grammar_in_reasoning(chat_body, fault_modes.emitted_tokens(gen.tokens, faults, quirks),
                                                   faults)
        if emitted != gen.tokens:
            gen.tokens, gen.scored = emitted, []
        return prompt, gen, render.Reply.build(gen, faults, quirks)

    def _meta(self, prefix: str, prompt: list[int], gen: Generation) -> render.Meta:
        return render.Meta(id=f"{prefix}{uuid.uuid4().hex[:24]}", created=int(time.time()), model=self.settings.model,
                           prompt_tokens=len(prompt), completion_tokens=len(gen.tokens),
                           reasoning_tokens=reasoning_token_count(gen.tokens))

    # -- chat ---------------------------------------------------------------------------------

    def chat(self, body: dict) -> dict | list[dict]:
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise BadRequest("messages must be a non-empty list", "messages")
        effort = body.get("reasoning_effort")
        if effort is not None and effort not in harmony.EFFORTS:
            raise BadRequest(f"reasoning_effort must be one of {', '.join(harmony.EFFORTS)}", "reasoning_effort")
        surfaces.check_chat(self.settings.offer, body)
        body = surfaces.without_token_ids(self.settings.offer, body)
        logprobs = bool(body.get("logprobs")) and "no-logprobs" not in self.settings.quirks
        k = _int(body, "top_logprobs", default=0) if logprobs else 0
        prompt, gen, reply = self.assistant_turn(body, body, k, ("max_completion_tokens", "max_tokens"))
        meta = self._meta("chatcmpl-", prompt, gen)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return surfaces.chat_answer(self.settings.offer, render.chat_chunks(reply, gen, meta, logprobs, include_usage))
        return surfaces.chat_answer(self.settings.offer, render.chat_response(reply, gen, meta, logprobs,
                                                                              prompt if body.get("return_token_ids") else None))

    # -- responses ------------------------------------------------------------------------------

    def responses(self, body: dict) -> dict | list[dict]:
        if body.get("input") is None:
            raise BadRequest("input is required", "input")
        effort = (body.get("reasoning") or {}).get("effort")
        if effort is not None and effort not in harmony.EFFORTS:
            raise BadRequest(f"reasoning.effort must be one of {', '.join(harmony.EFFORTS)}", "reasoning.effort")
        if problem := harmony.responses_tool_choice_problem(body.get("tool_choice")):
            raise BadRequest(problem, "tool_choice")
        prompt, gen, reply = self.assistant_turn(harmony.responses_to_chat(body), body, 0, ("max_output_tokens",))
        response = render.responses_object(reply, gen, self._meta("resp_", prompt, gen))
        if body.get("stream"):
            return render.responses_events(response)
        return response

    # -- completions -----------------------------------------------------------------------------

    def completions(self, body: dict) -> dict | list[dict]:
        surfaces.check_completions(self.settings.offer, body)
        body = surfaces.without_token_ids(self.settings.offer, body)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            prompt = prompt[0]
        if isinstance(prompt, str):
            tokens = harmony.encode_with_specials(prompt)
        elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and 0 <= t < harmony.VOCAB_SIZE for t in prompt):
            tokens = list(prompt)
        else:
            raise BadRequest("prompt must be a string or a non-empty list of token ids", "prompt")
        quirks = self.settings.quirks
        if ({"no-prompt-logprobs", "no-logprobs"} & quirks) and (body.get("echo") or body.get("prompt_logprobs") is not None):
            raise BadRequest("echo and prompt_logprobs are not supported", "prompt_logprobs")
        max_tokens = _int(body, "max_tokens", default=16)
        logprobs = None if "no-logprobs" in quirks else _int(body, "logprobs", default=None)
        prompt_logprobs = _int(body, "prompt_logprobs", default=None)
        echo = bool(body.get("echo"))
        if echo and logprobs is not None and prompt_logprobs is None:
            prompt_logprobs = logprobs
        scored = self.engine.score(tokens, 1, max(prompt_logprobs or 0, 1)) if prompt_logprobs is not None else None
        gen = Generation()
        if max_tokens:
            faults = self.settings.faults
            stops, transform = (harmony.RETURN, harmony.END_OF_TEXT, harmony.CALL), None
            if "no-call-stop" in faults:
                stops, transform = (harmony.RETURN, harmony.END_OF_TEXT), fault_modes.RunOnAfterCall()
            gen = self.engine.generate(tokens, max_tokens, stops, k=logprobs or 0, transform=transform, **_sampling(body))
            emitted = fault_modes.emitted_tokens(gen.tokens, faults, self.settings.quirks)
            if emitted != gen.tokens:
                gen.tokens, gen.scored = emitted, []
        meta = render.Meta(id=f"cmpl-{uuid.uuid4().hex[:24]}", created=int(time.time()), model=self.settings.model,
                           prompt_tokens=len(tokens), completion_tokens=len(gen.tokens), reasoning_tokens=0)
        response = render.completion_response(tokens, gen, meta, body, scored, logprobs, prompt_logprobs, echo,
                                              self.settings.offer.chosen_in_top)
        if body.get("stream"):
            return render.completion_chunks(response, bool((body.get("stream_options") or {}).get("include_usage")))
        return response

    def tokenize(self, body: dict) -> dict:
        if isinstance(body.get("messages"), list):
            tokens = fault_modes.render(body, self.settings.today(), self.settings.faults)
        elif isinstance(body.get("prompt"), str):
            tokens = harmony.encode_with_specials(body["prompt"])
        else:
            raise BadRequest("give messages or prompt", "messages")
        return {"tokens": tokens, "count": len(tokens), "max_model_len": 131072}


def _sse(items: list[dict], named: bool) -> StreamingResponse:
    def lines():
        for item in items:
            prefix = f"event: {item['type']}\n" if named else ""
            yield f"{prefix}data: {json.dumps(item)}\n\n"
        if not named:
            yield "data: [DONE]\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream")


def _random_error(status: int) -> Response:
    """A flaky host's answer (`random-5xx` surface): 500, or 429 with `Retry-After: 0`."""
    if status == 429:
        return error_response(429, "Rate limit reached; retry after 0 s", "rate_limit_error", headers={"Retry-After": "0"})
    return error_response(500, "Internal Server Error", "server_error")


async def _not_found(request: Request) -> Response:
    """An endpoint this surface does not serve, answered as hosts answer an unknown URL."""
    return error_response(404, f"Invalid URL ({request.method} {request.url.path})", "not_found_error")


def create_app(engine: Engine, settings: Settings) -> Starlette:
    server = Server(engine, settings)

    flaky = surfaces.Flaky(settings.offer.error_rate, settings.offer.seed)

    def endpoint(handler, named_events: bool = False):
        async def route(request: Request) -> Response:
            if (status := flaky.draw()) is not None:
                return _random_error(status)
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                return error_response(400, "request body is not valid JSON")
            if not isinstance(body, dict):
                return error_response(400, "request body must be a JSON object")
            if "model" in body and body["model"] != settings.model:
                return error_response(404, f"model {body['model']!r} does not exist", "not_found_error", "model")
            try:
                result = await run_in_threadpool(handler, body)
            except (BadRequest, surfaces.BadParameter) as exc:
                return error_response(400, str(exc), param=exc.param)
            except fault_modes.ServerError as exc:
                return error_response(exc.status, str(exc), "server_error")
            if isinstance(result, list):
                return _sse(result, named_events)
            return JSONResponse(result)

        return route

    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": settings.model, "object": "model", "created": 0, "owned_by": "gpt-oss-verify"}]})

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    offer = settings.offer
    return Starlette(routes=[
        Route("/v1/models", models),
        Route("/health", health),
        Route("/v1/chat/completions", endpoint(server.chat), methods=["POST"]),
        Route("/v1/responses", endpoint(server.responses, named_events=True), methods=["POST"]),
        Route("/v1/completions", endpoint(server.completions) if offer.completions else _not_found, methods=["POST"]),
        Route("/tokenize", endpoint(server.tokenize) if offer.tokenize else _not_found, methods=["POST"]),
    ])
