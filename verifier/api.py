"""The Python API: `verify(...)` runs a verification as `gpt-oss-verify run` does; `load_result(path)` reads one.

    import verifier
    result = verifier.verify(base_url="http://localhost:8000/v1", model="openai/gpt-oss-20b",
                             suites=["harmony", "tools"], api_key_env="PROVIDER_KEY")
    print(result.verdict, [c.id for c in result.checks if c.verdict == "fail"])

As the OpenAI SDK does, `OPENAI_BASE_URL` and `OPENAI_API_KEY` are the defaults of `base_url` and `api_key`;
arguments win. The key is sent to the provider only, never written anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from verifier.config import DEFAULT_SUITES, RetryPolicy, RunConfig
from verifier.errors import VerifierError
from verifier.progress import Progress
from verifier.result import RunResult
from verifier.result import load as _load
from verifier.runner import Budget, Survey, execute, survey, unsent
from verifier.suites import load_suite

BASE_URL_ENV = "OPENAI_BASE_URL"
API_KEY_ENV = "OPENAI_API_KEY"
PROFILES: dict[str, list[str] | None] = {
    "full": None,
    "quick": ["chat", "prompt-ids", "score", "greedy-logprobs", "sampling"],
}
"""What each profile sends: `full` every case on every default API variant; `quick` the cases each suite tags `quick`
(see `Suite.for_profile`) on the non-streaming Chat API only (and the prompt-ids and drift evidence). An explicit
`apis` list wins over the profile's APIs (the case selection stays)."""


def profile_apis(profile: str, suites: list[str], apis: list[str] | None = None) -> list[str] | None:
    """The `--api` list of a profile for these suites (what none of them sends left out), unless `apis` names one."""
    if profile not in PROFILES:
        raise VerifierError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    if apis or PROFILES[profile] is None:
        return apis or None
    chosen = PROFILES[profile]
    idle = set(unsent([load_suite(name) for name in suites], chosen))
    return [name for name in chosen if name not in idle]


def resolve_api_key(api_key: str | None = None, api_key_env: str | None = None) -> str | None:
    """The key: `api_key`, else the variable `api_key_env` names (which must be set), else `$OPENAI_API_KEY`."""
    if api_key:
        return api_key
    if api_key_env:
        value = os.environ.get(api_key_env)
        if not value:
            raise VerifierError(f"environment variable {api_key_env} is not set")
        return value
    return os.environ.get(API_KEY_ENV) or None


def resolve_base_url(base_url: str | None = None, resume: Path | None = None) -> str | None:
    """The endpoint: `base_url`, else `$OPENAI_BASE_URL`; a resumed run keeps its own (None here)."""
    if base_url or resume is not None:
        return base_url
    return os.environ.get(BASE_URL_ENV) or None


def run_config(base_url: str | None = None, model: str | None = None, suites: list[str] | None = None, *,
               api_key: str | None = None, api_key_env: str | None = None, golden: Path | None = None,
               apis: list[str] | None = None, profile: str = "full", out: Path | str = "reports", faults: list[str] | None = None,
               quirks: list[str] | None = None, surfaces: list[str] | None = None, drift_method: str = "auto",
               score_all: bool = False, timeout: float = 120.0, concurrency: int = 4, retries: int = 5,
               retry_base: float = 0.5, resume: Path | None = None) -> RunConfig:
    """The `RunConfig` these arguments (and the OpenAI environment variables) describe."""
    return RunConfig(base_url=resolve_base_url(base_url, resume), model=model,
                     api_key=resolve_api_key(api_key, api_key_env), suites=list(suites or DEFAULT_SUITES),
                     golden=Path(golden) if golden else None, profile=profile, apis=profile_apis(profile, list(suites or DEFAULT_SUITES), apis), out=Path(out), faults=list(faults or []),
                     quirks=list(quirks or []), surfaces=list(surfaces or []), drift_method=drift_method,
                     score_all=score_all, timeout=timeout, concurrency=concurrency,
                     retry=RetryPolicy(attempts=retries, base_s=retry_base))


def verify(base_url: str | None = None, model: str | None = None, suites: list[str] | None = None, *,
           resume: Path | None = None, max_requests: int | None = None, max_tokens: int | None = None,
           progress: Progress | None = None, **options) -> RunResult:
    """Verify an endpoint (or, without `base_url` and `$OPENAI_BASE_URL`, the built-in reference provider).

    `options` are `run_config`'s: api_key, api_key_env, golden, apis, profile (`quick` or `full`), out, faults, quirks, surfaces,
    drift_method, score_all, timeout, concurrency, retries, retry_base. Writes the run directory
    (`out/<run_id>`, or `resume`) as the CLI does and returns its result; raises `VerifierError` on bad
    input or when the endpoint cannot be used, `BudgetReached` at `max_requests`/`max_tokens`.
    """
    config = run_config(base_url, model, suites, resume=resume, **options)
    budget = Budget(max_requests=max_requests, max_tokens=max_tokens)
    result, _ = execute(config, progress, resume, budget)
    return result


def plan(base_url: str | None = None, model: str | None = None, suites: list[str] | None = None, *,
         resume: Path | None = None, **options) -> Survey:
    """Probe the endpoint and plan a run, sending nothing else (`gpt-oss-verify probe`, `run --dry-run`)."""
    return survey(run_config(base_url, model, suites, resume=resume, **options), resume)


def run_dir_of(result: RunResult, out: Path | str = "reports", resume: Path | None = None) -> Path:
    """The directory `verify` wrote `result` to."""
    return Path(resume) if resume is not None else Path(out) / result.run_id


def load_result(path: Path | str) -> RunResult:
    """A `result.json` (or a run directory holding one); `VerifierError` says in one line why it cannot be used."""
    path = Path(path)
    return _load(path / "result.json" if path.is_dir() else path)


def score(run_dir: Path | str, checkpoint: Path | str | None = None, dtype: str | None = None,
          device: str = "cpu") -> RunResult:
    """Score a finished run's answers with the reference (`gpt-oss-verify score`; see `verifier.rescore`) and return
    its result with `drift.reference_scored` added; result.json and the reports are rewritten."""
    from verifier.rescore import score_run  # the reference (torch) loads only when scoring

    result, _ = score_run(Path(run_dir), Path(checkpoint) if checkpoint else None, dtype, device)
    return result
