"""`gpt-oss-verify`: exit 0 pass, 1 conformance failure, 2 usage or infrastructure error."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from verifier.errors import VerifierError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Verify that an OpenAI-compatible endpoint computes gpt-oss and speaks Harmony like the reference.")
golden_app = typer.Typer(no_args_is_help=True, help="Build golden records with the reference.")
checkpoint_app = typer.Typer(no_args_is_help=True, help="The conformance checkpoint.")
app.add_typer(golden_app, name="golden")
app.add_typer(checkpoint_app, name="checkpoint")


def _fail(message: str) -> None:
    typer.echo(f"gpt-oss-verify: error: {message}", err=True)
    raise typer.Exit(2)


def guarded(fn):
    """Turn every VerifierError into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VerifierError as exc:
            _fail(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
        except KeyboardInterrupt:
            typer.echo("gpt-oss-verify: interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


@app.command()
@guarded
def run(
    base_url: Annotated[str | None, typer.Option(help="Provider base URL ending in /v1. Without it, the built-in "
                                                 "reference provider serves the conformance checkpoint.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name to request (required with --base-url).")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="Name of the environment variable holding the API key.")] = None,
    suite: Annotated[list[str] | None, typer.Option(help="Suite to run (repeatable). Default: all shipped suites.")] = None,
    golden: Annotated[Path | None, typer.Option(help="Directory of golden files (<suite>.json) for this model.")] = None,
    api: Annotated[list[str] | None, typer.Option(help="Only these API variants (repeatable), e.g. chat, "
                                                  "chat-stream, responses, completions, score.")] = None,
    out: Annotated[Path, typer.Option(help="Directory for run results.")] = Path("reports"),
    fault: Annotated[list[str] | None, typer.Option(help="Fault mode of the built-in provider (repeatable).")] = None,
    variant: Annotated[list[str] | None, typer.Option(help="Honest variant of the built-in provider (repeatable).")] = None,
    timeout: Annotated[float, typer.Option(help="Per-request timeout in seconds.")] = 120.0,
):
    """Run the suites against a provider and write result.json, report.html, junit.xml and a journal."""
    from verifier.runner import DEFAULT_SUITES, RunConfig, execute

    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            _fail(f"environment variable {api_key_env} is not set")
    config = RunConfig(base_url=base_url, model=model, api_key=api_key, suites=suite or list(DEFAULT_SUITES),
                       golden=golden, apis=api, out=out, faults=fault or [], variants=variant or [],
                       timeout=timeout)
    progress = None
    if sys.stderr.isatty() and not os.environ.get("CI"):
        progress = lambda label: typer.echo(f"  … {label}", err=True)  # noqa: E731
    result, run_dir = execute(config, progress)
    _print_summary(result)
    typer.echo(f"verdict: {result.verdict}")
    typer.echo(f"report: {run_dir / 'report.html'}")
    raise typer.Exit({"pass": 0, "fail": 1}.get(result.verdict, 2))


def _print_summary(result) -> None:
    for check in result.checks:
        mark = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "skip"}[check.verdict.value]
        line = f"{mark:5} {check.id:30} {check.summary}"
        typer.echo(line if len(line) < 200 else line[:197] + "...")


@app.command()
@guarded
def serve(
    checkpoint: Annotated[Path | None, typer.Option(help="HF checkpoint directory (default: the conformance checkpoint).")] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    model: Annotated[str | None, typer.Option(help="Served model name.")] = None,
    fault: Annotated[list[str] | None, typer.Option(help="Fault mode to switch on (repeatable); see `faults`.")] = None,
    variant: Annotated[list[str] | None, typer.Option(help="Honest variant to switch on (repeatable); see `faults`.")] = None,
    date: Annotated[str | None, typer.Option(help="Pin the conversation date (YYYY-MM-DD); default today.")] = None,
    dtype: Annotated[str, typer.Option(help="fp32 or bf16.")] = "fp32",
):
    """Serve the reference model as an OpenAI-compatible provider."""
    from verifier.serve import parse_names, serve_forever
    from verifier.testmodel.compact import NAME, default_checkpoint

    parse_names(fault, variant)
    ckpt = checkpoint or default_checkpoint()
    typer.echo(f"serving {ckpt} on http://{host}:{port}/v1", err=True)
    serve_forever(ckpt, model or (NAME if checkpoint is None else ckpt.name), host, port, fault, date, dtype, variant)


@app.command()
def faults():
    """List the built-in provider's fault modes (and the checks each must fail) and honest variants."""
    from verifier.serve.faults import FAULTS, VARIANTS

    typer.echo("Faults (gpt-oss-verify run --fault NAME):")
    for f in sorted(FAULTS.values(), key=lambda f: (f.mode, f.name)):
        typer.echo(f"  {f.name:28} [mode {f.mode}] {f.description}\n  {'':28} seen in: {f.seen_in}\n"
                   f"  {'':28} caught by: {', '.join(f.targets)}")
    typer.echo("Honest variants (gpt-oss-verify run --variant NAME; every check must still pass):")
    for v in VARIANTS.values():
        typer.echo(f"  {v.name:28} {v.description}")


@app.command()
def checks():
    """List every check: id, what it verifies, why, and where the failure was seen."""
    from verifier.checks import ordered

    for spec in ordered():
        typer.echo(f"{spec.id:30} {spec.title}\n{'':30} why: {spec.why}\n{'':30} seen in: {spec.source}; "
                   f"compares: {spec.compares}")


@app.command()
def suites():
    """List the shipped suites."""
    from verifier.suites import available, load_suite

    for name in available():
        s = load_suite(name)
        typer.echo(f"{s.name:10} v{s.version} {len(s.cases):3} cases  {', '.join(s.families)}")


@app.command()
@guarded
def report(
    result_json: Annotated[Path, typer.Argument(help="A result.json written by `run`.")],
    out: Annotated[Path | None, typer.Option(help="Directory to write report.html and junit.xml (default: beside it).")] = None,
):
    """Re-render report.html and junit.xml from a result.json."""
    from verifier.report import write_reports
    from verifier.runner import load_result

    result = load_result(result_json)
    target = out or result_json.parent
    target.mkdir(parents=True, exist_ok=True)
    paths = write_reports(result, target)
    typer.echo(f"report: {paths['html']}")


@golden_app.command("build")
@guarded
def golden_build(
    checkpoint: Annotated[Path | None, typer.Option(help="HF checkpoint directory (default: the conformance checkpoint).")] = None,
    suite: Annotated[list[str] | None, typer.Option(help="Suite (repeatable). Default: all shipped suites.")] = None,
    out: Annotated[Path | None, typer.Option(help="Golden root; files go to OUT/<checkpoint>/<dtype>/<suite>.json.")] = None,
    dtype: Annotated[str, typer.Option(help="fp32 or bf16.")] = "fp32",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    date: Annotated[str | None, typer.Option(help="Conversation date rendered into prompts.")] = None,
    top_k: Annotated[int, typer.Option(help="Top-K log-probabilities kept per position (≥ 20).", min=20)] = 20,
):
    """Run the reference over suites and write golden records."""
    from verifier import golden as store
    from verifier import harmony
    from verifier.paths import golden_dir
    from verifier.reference.build import build, checkpoint_name
    from verifier.reference.engine import Engine
    from verifier.suites import available, load_suite
    from verifier.testmodel.compact import default_checkpoint

    names = suite or available()
    loaded = [load_suite(n) for n in names]
    ckpt = checkpoint or default_checkpoint()
    engine = Engine(ckpt, dtype, device)
    root = out or golden_dir()
    for s in loaded:
        gf = build(engine, s, date or harmony.DEFAULT_DATE, top_k)
        path = store.save(gf, store.golden_path(root, checkpoint_name(ckpt), dtype, s.name))
        typer.echo(f"{s.name}: {len(gf.records)} records -> {path}")


@checkpoint_app.command("materialize")
@guarded
def checkpoint_materialize(out: Annotated[Path, typer.Option(help="Directory to write the checkpoint to.")]):
    """Write the conformance checkpoint as a standard HF directory (config, safetensors, tokenizer)."""
    from verifier.testmodel.compact import materialize

    typer.echo(str(materialize(out)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
