"""A second real engine under test: llama.cpp's `llama-server`, built from source, on loopback.

    python -m verifier.harness.llama_cpp build                        # build or reuse the cached binaries
    python -m verifier.harness.llama_cpp gguf --type f32|bf16|q8_0|q4_0|mxfp4_moe
    python -m verifier.harness.llama_cpp serve --type f32             # serve until interrupted

The source is the llama.cpp tree vendored in the `llama-cpp-python` sdist (pinned below), fetched
from the package index with pip. `llama-server` and `llama-quantize` are built once per version into
a cache outside the clone (`$GPT_OSS_VERIFY_LLAMA_CPP_CACHE`, default
`~/.cache/gpt-oss-verify/llama.cpp-VERSION-noamx-CPUKEY`) and reused whenever present (the first time 4 minutes
on 2 free cores, 12 on busy ones). The conformance checkpoint is converted with the tree's own
`convert_hf_to_gguf.py` (f32, bf16) and quantised with `llama-quantize` (Q8_0, Q4_0, MXFP4_MOE); GGUF files are cached beside the
binaries (`_checkpoint_key`).

The GGUF carries no chat template, so the server gets `--jinja --chat-template-file` with the tree's
official gpt-oss template. Sampling defaults (top_k 40, min_p 0.05) are switched off on the command
line so that T=1 samples come from the model's whole distribution, as in the reference.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from verifier import harmony
from verifier.errors import ProviderError
from verifier.harness.local import LocalServer, free_port, launched, pinned_clock, until_interrupted, until_stop
from verifier.paths import exclusive
from verifier.scores import PositionScore

VERSION = "0.3.36"
"""llama-cpp-python sdist whose vendored llama.cpp is built."""
TARGETS = ("llama-server", "llama-quantize")
TYPES = ("f32", "bf16", "q8_0", "q4_0", "mxfp4_moe")
CONVERTED = {"f32": "f32", "bf16": "bf16"}
QUANTISED = {"q8_0": "Q8_0", "q4_0": "Q4_0", "mxfp4_moe": "MXFP4_MOE"}
"""Quantised types are made from the f32 GGUF."""
TEMPLATE = "models/templates/openai-gpt-oss-120b.jinja"
SERVER_FLAGS = ("-np", "1", "-c", "4096", "-t", "1", "--jinja", "--top-k", "0", "--min-p", "0.0",
                "--top-p", "1.0", "--no-webui")
"""One slot, a context the suites fit in, one thread (faster than two on a loaded 2-core machine),
Jinja templates, and no truncation of the sampling distribution."""


UNOPTIMISED = ("/tools/mtmd/", "/vendor/cpp-httplib/")
"""Sources compiled without optimisation: the multimodal library (llama-server links it, but nothing here serves
images or audio) and the HTTP library (loopback requests of a few kilobytes). Optimising them was half of the
build's compile time (measured 2026-12-02: 1650 of 3800 compile-seconds); the model's code (`ggml`, `src`) and
the server's own (`common`, `tools/server`: templates, parsing, log-probabilities) keep Release's -O3."""
LAUNCHER = """#!/bin/sh
# compiler launcher: a source (the argument after -c) under {dirs} gets -O0 (GCC and Clang take the last -O)
previous=
for arg in "$@"; do
  if [ "$previous" = "-c" ]; then
    case "$arg" in {patterns}) exec "$@" -O0 ;; esac
  fi
  previous=$arg
done
exec "$@"
"""


NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
"""A native build still leaves AMX out: in VMs that advertise AMX without granting its tile state (measured on a
Sapphire Rapids guest) llama-server dies of SIGILL on the first Q4_0 / MXFP4 matmul."""


def cache_dir() -> Path:
    """Where this version's build lives: keyed by version and by the CPU's instruction-set flags, since the
    build is native (`GGML_NATIVE`): binaries restored on another CPU would die of an illegal instruction."""
    default = Path.home() / ".cache" / "gpt-oss-verify" / f"llama.cpp-{VERSION}-noamx-{_cpu_key()}"
    return Path(os.environ.get("GPT_OSS_VERIFY_LLAMA_CPP_CACHE") or default)


def _cpu_key() -> str:
    """A short hash of the CPU's model and flags (`/proc/cpuinfo`), else of the machine's architecture."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    found = [line for line in lines if line.startswith(("flags", "Features", "model name"))][:2]
    return hashlib.sha256("\n".join(found or [platform.machine()]).encode()).hexdigest()[:8]


def source_dir() -> Path:
    return cache_dir() / "src"


def binary(name: str) -> Path:
    return cache_dir() / "bin" / name


def _marker() -> Path:
    return cache_dir() / ".ready"


def built() -> bool:
    return _marker().is_file() and all(binary(name).is_file() for name in TARGETS)


def _fetch_source(log) -> None:
    """Download the pinned sdist and unpack its vendored llama.cpp into the cache."""
    if (source_dir() / "CMakeLists.txt").is_file():
        return
    with tempfile.TemporaryDirectory() as tmp:
        log(f"downloading llama-cpp-python=={VERSION} (sdist, about 77 MB)")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--no-binary=:all:", f"llama-cpp-python=={VERSION}", "-d", tmp], check=True)
        archive = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        prefix = f"{archive.name.removesuffix('.tar.gz')}/vendor/llama.cpp/"
        staging = cache_dir() / "src.partial"
        shutil.rmtree(staging, ignore_errors=True)
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
            for member in members:
                member.name = member.name[len(prefix):]
            tar.extractall(staging, members=[m for m in members if m.name], filter="data")
        staging.rename(source_dir())


def ensure_built(log=print) -> Path:
    """Build (or reuse) llama-server and llama-quantize; returns the binaries' folder."""
    if built():
        return binary("llama-server").parent
    with exclusive(cache_dir() / ".lock"):  # another process may be building it
        return binary("llama-server").parent if built() else _build(log)


def _build(log) -> Path:
    _fetch_source(log)
    build = cache_dir() / "build"
    log(f"building llama.cpp {TARGETS} from llama-cpp-python {VERSION} into {cache_dir()} (4-12 minutes on 2 cores)")
    began = time.monotonic()
    options = ["-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TESTS=OFF",
               "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
               "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=ON",
               f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}"]
    launcher = _launcher()
    options += [f"-DCMAKE_C_COMPILER_LAUNCHER={launcher}", f"-DCMAKE_CXX_COMPILER_LAUNCHER={launcher}"]
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    _logged(["cmake", "-S", str(source_dir()), "-B", str(build), *generator, *options], cache_dir() / "build.log")
    jobs = str(os.cpu_count() or 2)
    _logged(["cmake", "--build", str(build), "--target", *TARGETS, "-j", jobs], cache_dir() / "build.log")
    (cache_dir() / "bin").mkdir(exist_ok=True)
    for name in TARGETS:
        shutil.copy2(build / "bin" / name, binary(name))
    (cache_dir() / "build-seconds").write_text(f"{time.monotonic() - began:.0f}\n")
    _marker().touch()
    return binary("llama-server").parent


def _launcher() -> Path:
    """The compiler launcher that leaves `UNOPTIMISED` sources at -O0, written into the cache."""
    path = cache_dir() / "compile-launcher.sh"
    path.write_text(LAUNCHER.format(dirs=", ".join(UNOPTIMISED), patterns="|".join(f"*{d}*" for d in UNOPTIMISED)))
    path.chmod(0o755)
    return path


def _logged(command: list[str], log: Path, env: dict | None = None) -> None:
    """Run a build step, its output appended to `log`; a failure raises with the log's tail."""
    with open(log, "a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise ProviderError(f"{command[0]} failed with code {done.returncode} (log: {log}):\n{tail}")


def template() -> Path:
    return source_dir() / TEMPLATE


def _checkpoint_key(checkpoint: Path) -> str:
    """A checkpoint's GGUFs are keyed by its folder's name and its weight files' names, sizes and times, so
    that a checkpoint written again (a test session's fresh copy included) is converted again."""
    stamp = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in checkpoint.glob("*.safetensors"))
    return hashlib.sha256(repr(stamp).encode()).hexdigest()[:8]


def ensure_gguf(kind: str, checkpoint: Path | None = None, log=print) -> Path:
    """The conformance checkpoint (or `checkpoint`) as a GGUF of `kind`, converted once and cached."""
    if kind not in TYPES:
        raise ValueError(f"unknown GGUF type {kind!r}; choose from {', '.join(TYPES)}")
    ensure_built(log)
    if checkpoint is None:
        from verifier.testmodel.compact import default_checkpoint

        checkpoint = default_checkpoint()
    out = cache_dir() / "gguf" / f"{checkpoint.name}-{_checkpoint_key(checkpoint)}-{kind}.gguf"
    if out.is_file():
        return out
    with exclusive(out.with_suffix(".lock")):  # another process may be converting it
        return out if out.is_file() else _convert(kind, checkpoint, out, log)


def _convert(kind: str, checkpoint: Path, out: Path, log) -> Path:
    partial = out.with_suffix(".partial")
    if kind in CONVERTED:
        log(f"converting {checkpoint} to GGUF {kind}")
        env = {**os.environ, "PYTHONPATH": str(source_dir() / "gguf-py")}
        _logged([sys.executable, str(source_dir() / "convert_hf_to_gguf.py"), str(checkpoint),
                 "--outtype", CONVERTED[kind], "--outfile", str(partial)], out.with_suffix(".log"), env)
    else:
        source = ensure_gguf("f32", checkpoint, log)
        log(f"quantising GGUF to {QUANTISED[kind]}")
        _logged([str(binary("llama-quantize")), str(source), str(partial), QUANTISED[kind]], out.with_suffix(".log"))
    partial.rename(out)
    return out


@contextmanager
def serve(kind: str = "f32", model: str = "gpt-oss-conformance", checkpoint: Path | None = None,
          args: tuple[str, ...] = (), log_dir: Path | None = None, timeout: float = 600.0,
          date: str | None = None) -> Iterator[LocalServer]:
    """Start llama-server on a GGUF of `kind` on a free loopback port, wait until it answers, always stop it.
    `date`: the day its clock says (`pinned_clock`), so the prompts it renders are the same every day; None: today."""
    gguf = ensure_gguf(kind, checkpoint)
    port = free_port()
    command = [str(binary("llama-server")), "-m", str(gguf), "--alias", model, "--host", "127.0.0.1",
               "--port", str(port), "--chat-template-file", str(template()), *SERVER_FLAGS, *args]
    env = {**os.environ, **pinned_clock(date)} if date else None
    with launched("llama-server", command, port, model, log_dir, "/health", timeout, poll_s=0.5, env=env) as server:
        server.date = date
        yield server


CONTINUATION_RETRIES = 8
"""Times a position is asked again with the token llama-server picked banned, when that token ends inside a
UTF-8 character (llama-server never reports the probabilities of such a token)."""


def teacher_forcing(server: LocalServer, k: int = 20, timeout: float = 60.0,
                    transport: httpx.BaseTransport | None = None) -> Callable[[list[int], int], list[PositionScore]]:
    """A scorer of tokens[start:] by llama-server, which has no prompt log-probabilities: per position, a
    one-token completion of the prefix (token ids, native `/completion`), whose `n_probs` are the softmax of the
    model's logits after the prefix, before any sampler. The server's prompt cache makes each step one token.
    Where the greedy pick is a token that ends inside a UTF-8 character, llama-server reports nothing for it, so
    the position is asked again with that token banned (`logit_bias`, a sampler: the logits reported are not
    moved). A reply it cannot read is a `ProviderError`."""
    root = server.url.removesuffix("/v1")

    def position(client: httpx.Client, prefix: list[int], token: int) -> PositionScore:
        banned: list[list] = []
        for _ in range(CONTINUATION_RETRIES):
            body = {"prompt": prefix, "n_predict": 1, "n_probs": k, "temperature": 0, "cache_prompt": True,
                    "return_tokens": True, "logit_bias": banned}
            try:
                data = client.post("/completion", json=body).raise_for_status().json()
                probs = data.get("completion_probabilities") or []
                if probs:
                    top = {int(entry["id"]): float(entry["logprob"]) for entry in probs[0]["top_logprobs"]}
                    return PositionScore(token_logprob=top.get(token), top=top)
                picked = (data.get("tokens") or [None])[0]
            except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
                raise ProviderError(f"llama-server teacher forcing: {exc.__class__.__name__}: {exc}") from None
            if not isinstance(picked, int) or [picked, False] in banned:
                raise ProviderError(f"llama-server reported no probabilities and no new token to ban ({picked!r})")
            banned.append([picked, False])
        raise ProviderError(f"llama-server reported no probabilities after {CONTINUATION_RETRIES} picks at one position")

    def score(tokens: list[int], start: int) -> list[PositionScore]:
        with httpx.Client(base_url=root, timeout=timeout, transport=transport) as client:
            return [position(client, tokens[:j], tokens[j]) for j in range(start, len(tokens))]

    return score


PURE_SAMPLING = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "samplers": ["temperature"]}
"""Temperature-1 sampling with every truncation off (llama-server's defaults keep top-40, top-p 0.95, min-p 0.05)."""


def generate(server: LocalServer, prompt: list[int], max_tokens: int, stop: tuple[int, ...],
             temperature: float = 0.0, seed: int | None = None, timeout: float = 300.0) -> list[int]:
    """Tokens llama-server generates after the token ids `prompt` (native `/completion`), greedily or (temperature 1)
    from the model's own distribution, up to and including the first of `stop`. A reply it cannot read is a
    `ProviderError`."""
    sampler = PURE_SAMPLING if temperature > 0 else {"temperature": 0.0}
    body = {"prompt": prompt, "n_predict": max_tokens, "return_tokens": True, "cache_prompt": False, **sampler,
            "seed": -1 if seed is None else seed}
    try:
        tokens = httpx.post(f"{server.url.removesuffix('/v1')}/completion", json=body,
                            timeout=timeout).raise_for_status().json()["tokens"]
        return until_stop([int(t) for t in tokens], stop)
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise ProviderError(f"llama-server generation: {exc.__class__.__name__}: {exc}") from None


def greedy_answerer(server: LocalServer) -> Callable[[list[int], int], list[int]]:
    """`calibrate.Answerer` of llama-server: greedy tokens after a prompt, up to an assistant stop."""
    return lambda prompt, budget: generate(server, prompt, budget, harmony.ASSISTANT_STOPS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build or reuse llama-server and llama-quantize")
    for name in ("gguf", "serve"):
        command = sub.add_parser(name)
        command.add_argument("--type", choices=TYPES, default="f32")
        command.add_argument("--checkpoint", type=Path)
    args, extra = parser.parse_known_args()
    try:
        _command(args, tuple(extra))
    except (ProviderError, ValueError) as exc:
        sys.exit(f"llama_cpp: error: {exc}")


def _command(args: argparse.Namespace, extra: tuple[str, ...]) -> None:
    if args.command == "build":
        print(ensure_built())
    elif args.command == "gguf":
        print(ensure_gguf(args.type, args.checkpoint))
    else:
        with serve(args.type, checkpoint=args.checkpoint, args=extra) as server:
            until_interrupted(server, f"llama-server ({args.type})")


if __name__ == "__main__":
    main()
