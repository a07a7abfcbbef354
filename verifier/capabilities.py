"""What an endpoint offers, as a probe found it (`verifier.providers.probe`): APIs, streaming, logprobs and
their caps, prompt forms, prompt-token-id sources, the reasoning field, tool_choice forms.

Every capability is three-valued: True (offered), False (not offered: the endpoint answered 404/405/501, said
"not found" or "unsupported", or ignored the parameter) or None (could not be checked: the answer was an
error that says nothing either way). A run sends what is offered or unknown and skips what is not, with the
reason, so that an endpoint is never failed for what it does not claim to serve.
"""

from __future__ import annotations

from pydantic import Field

from verifier.verdict import Documented

VARIANT_FIELDS: dict[str, tuple[str, ...]] = {
    "chat": ("chat",),
    "chat-stream": ("chat", "chat_stream"),
    "responses": ("responses",),
    "responses-stream": ("responses", "responses_stream"),
    "completions": ("completions", "token_id_prompts"),
    "completions-stream": ("completions", "token_id_prompts", "completions_stream"),
}
"""The capabilities each API variant needs (a `completions` variant sends a rendered prompt as token ids)."""


class Capabilities(Documented):
    """What the endpoint offers, from its answers to a few cheap requests."""

    chat: bool | None = None
    """`POST /chat/completions` answers."""
    chat_stream: bool | None = None
    """Chat Completions streams (`stream: true`)."""
    responses: bool | None = None
    """`POST /responses` answers."""
    responses_stream: bool | None = None
    """The Responses API streams."""
    completions: bool | None = None
    """`POST /completions` (legacy text completions) answers, with some prompt form."""
    completions_stream: bool | None = None
    """Completions stream."""
    token_id_prompts: bool | None = None
    """Completions take a prompt as a list of token ids (False: strings only)."""
    prompt_logprobs: int | None = None
    """vLLM `prompt_logprobs`: the largest k that worked (1: the prompt token's own logprob only; 0: not offered,
    or no logprob in the answer; None: not checked)."""
    echo_logprobs: int | None = None
    """`echo` with integer `logprobs` scores the prompt: the largest k that worked (1: empty top lists beside the
    prompt tokens' own logprobs; 0: not offered, or no logprob in the answer)."""
    completion_logprob_ids: bool | None = None
    """`logprobs` on a completion carries the generated tokens' ids; where it does, completion requests ask for
    `logprobs: 1` and read the ids there when `token_ids` are missing (llama-server ignores `return_token_ids`
    and shows no end-of-generation token in the text)."""
    chat_logprobs: bool | None = None
    """Chat `logprobs: true` returns per-token log-probabilities."""
    chat_top_logprobs: int | None = None
    """The largest chat `top_logprobs` that worked (1 also where the answer's top lists were empty beside the
    chosen tokens' logprobs: top-1 at temperature 0; 0: `top_logprobs` refused at every k; None: not checked)."""
    prompt_ids_sources: list[str] | None = None
    """Where the endpoint shows the prompt token ids of a chat request: `return_token_ids`, `tokenize` (empty:
    nowhere; None: could not be checked)."""
    reasoning_field: str | None = None
    """Where Chat puts reasoning: `reasoning`, `reasoning_content`, `inline` (`<reasoning>` in content), or None
    (none seen in the probe's few tokens)."""
    tool_choice: dict[str, bool | None] = Field(default_factory=dict)
    """Chat `tool_choice` forms: `string` (`"required"`) and `named` (a function object), each offered, refused
    (False) or could not be checked (None); empty where not probed."""
    response_format: bool | None = None
    """Chat `response_format` of type `json_schema` (structured outputs) is taken (False: refused as unsupported,
    so the run skips its structured-output requests on Chat; None: not checked, or refused for another reason)."""
    notes: dict[str, str] = Field(default_factory=dict)
    """Why, per capability found missing or unknown: the status or message the endpoint answered with."""
    requests: int = 0
    """Requests the probe sent (not journaled, not in the run's cost; counted towards `run --max-requests`)."""
    prompt_tokens: int = 0
    """Prompt tokens the probe's answers reported (counted towards `run --max-tokens`)."""
    completion_tokens: int = 0
    """Completion tokens the probe's answers reported (counted towards `run --max-tokens`)."""

    @property
    def teacher_forcing(self) -> bool | None:
        """Prompt scoring on completions: vLLM `prompt_logprobs`, or `echo` with `logprobs`."""
        if self.completions is False:
            return False
        scores = [self.prompt_logprobs, self.echo_logprobs]
        if any(k for k in scores):
            return True
        return None if None in scores or self.completions is None else False

    @property
    def greedy_logprobs(self) -> bool | None:
        """Chat log-probabilities of generated tokens."""
        return False if self.chat is False else self.chat_logprobs

    @property
    def prompt_ids(self) -> bool | None:
        """Some way to see the prompt token ids of a chat request."""
        return None if self.prompt_ids_sources is None else bool(self.prompt_ids_sources)

    def offers(self, variant: str) -> bool:
        """Whether to send an API variant: False only where a capability it needs is known to be missing."""
        return self.unsupported_reason(variant) is None

    def unsupported_reason(self, variant: str) -> str | None:
        """Why an API variant is not offered (None: offered, or not known not to be)."""
        for name in VARIANT_FIELDS.get(variant, ()):
            if getattr(self, name) is False:
                return self.why(name)
        return None

    def why(self, name: str) -> str:
        """`name` (a field) is not offered, with the endpoint's answer where one was kept."""
        note = self.notes.get(name)
        return f"{LABELS.get(name, name)}{f' ({note})' if note else ''}"

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(field, capability, offered: offered / not offered / could not be checked / a cap, note)."""
        out = []
        for name in type(self).model_fields:
            if name in ("notes", "requests", "prompt_tokens", "completion_tokens"):
                continue
            notes = [note for key, note in self.notes.items() if key == name or key.startswith(f"{name}.")]
            value = getattr(self, name)
            shown = "none seen" if name == "reasoning_field" and value is None else _shown(value)
            out.append((name, LABELS.get(name, name), shown, "; ".join(notes)))
        return out


LABELS: dict[str, str] = {
    "chat": "Chat Completions",
    "chat_stream": "Chat Completions streaming",
    "responses": "Responses API",
    "responses_stream": "Responses streaming",
    "completions": "/v1/completions",
    "completions_stream": "/v1/completions streaming",
    "token_id_prompts": "token-id prompts on /v1/completions",
    "prompt_logprobs": "prompt_logprobs (k)",
    "echo_logprobs": "echo + logprobs on the prompt (k)",
    "completion_logprob_ids": "token ids in completion logprobs",
    "chat_logprobs": "chat logprobs",
    "chat_top_logprobs": "chat top_logprobs (k)",
    "prompt_ids_sources": "prompt token ids",
    "reasoning_field": "reasoning field",
    "tool_choice": "tool_choice forms",
    "response_format": "response_format json_schema",
}


def _shown(value) -> str:
    if value is None:
        return "could not be checked"
    if isinstance(value, bool):
        return "offered" if value else "not offered"
    if isinstance(value, int):
        return f"up to {value}" if value else "not offered"
    if isinstance(value, list):
        return ", ".join(value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) or "could not be checked"
    return str(value)
