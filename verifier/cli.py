"""`gpt-oss-verify`: exit 0 pass, 1 conformance failure, 2 usage or infrastructure error."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from verifier.errors import VerifierError
from verifier.providers.messages import printable

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Verify that an OpenAI-compatible endpoint computes gpt-oss and speaks Harmony like the reference.")
golden_app = typer.Typer(no_args_is_help=True, help="Build golden records with the reference.")
checkpoint_app = typer.Typer(no_args_is_help=True, help="The conformance checkpoint.")
app.add_typer(golden_app, name="golden")
app.add_typer(checkpoint_app, name="checkpoint")
SURFACE_HELP = ("API surface of the built-in provider (repeatable): chat-only, string-completions[:K], "
                "capped-logprobs[:K], random-5xx[:RATE[:SEED]], inline-reasoning; see `faults`.")


def _show_version(value: bool) -> None:
    if value:
        from verifier import __version__

        typer.echo(f"gpt-oss-verify {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Verify that an OpenAI-compatible endpoint computes gpt-oss and speaks Harmony like the reference."""


def _fail(message: str) -> None:
    typer.echo(f"gpt-oss-verify: error: {printable(message)}", err=True)  # may quote provider text
    raise typer.Exit(2)


def guarded(fn):
    """Turn every VerifierError into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VerifierError as exc:
            _fail(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
        except KeyboardInterrupt as interrupt:
            where = getattr(interrupt, "run_dir", None)
            hint = f"; to finish it: gpt-oss-verify run --resume {where}" if where else ""
            typer.echo(f"gpt-oss-verify: interrupted{hint}", err=True)
            raise typer.Exit(130) from None

    return wrapper


@app.command()
@guarded
def run(
    base_url: Annotated[str | None, typer.Option(help="Provider base URL ending in /v1 (default: "
                                                 "$OPENAI_BASE_URL). Without either, the built-in reference provider "
                                                 "serves the conformance checkpoint.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name to request (required with --base-url).")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="Name of the environment variable holding the API key "
                                                    "(preferred: a flag shows in the process list; default: "
                                                    "OPENAI_API_KEY).")] = None,
    api_key: Annotated[str | None, typer.Option(help="The API key itself. It is sent to the provider only, never "
                                                "written to the journal, results, reports or logs.")] = None,
    suite: Annotated[list[str] | None, typer.Option(help="Suite to run (repeatable). Default: all shipped suites.")] = None,
    golden: Annotated[Path | None, typer.Option(help="Directory of golden files (<suite>.json) for this model.")] = None,
    api: Annotated[list[str] | None, typer.Option(help="Only these API variants and evidence kinds (repeatable): "
                                                  "chat, chat-stream, responses, responses-stream, completions, "
                                                  "completions-stream; score, prompt-ids, greedy-logprobs, sampling "
                                                  "(one drift evidence kind selects that drift method).")] = None,
    profile: Annotated[str, typer.Option(help="full (every case, every default API variant) or quick (the cases "
                                         "a suite tags quick, on the Chat API only, with prompt ids and drift). "
                                         "--api wins over its APIs.")] = "full",
    out: Annotated[Path, typer.Option(help="Directory for run results.")] = Path("reports"),
    fault: Annotated[list[str] | None, typer.Option(help="Fault mode of the built-in provider (repeatable).")] = None,
    quirk: Annotated[list[str] | None, typer.Option("--quirk", "--variant", help="Server quirk of the built-in "
                                                    "provider: an honest behaviour (repeatable); see `faults`.")] = None,
    surface: Annotated[list[str] | None, typer.Option(help=SURFACE_HELP)] = None,
    drift_method: Annotated[str, typer.Option(help="auto (teacher forcing, else greedy logprobs, else sampling), "
                                              "teacher, greedy or sampling.")] = "auto",
    score_all: Annotated[bool, typer.Option("--score-all", help="Score every golden position, not only until "
                                            "the sequential test has the power to catch the calibrated "
                                            "faults (slower; catches subtler drift).")] = False,
    timeout: Annotated[float, typer.Option(help="Per-request limit in seconds, for the whole response.")] = 120.0,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.", min=1)] = 4,
    retries: Annotated[int, typer.Option(help="Attempts per request on outages, rate limits and 5xx "
                                         "(capped exponential backoff with jitter; Retry-After honoured).",
                                         min=1)] = 5,
    retry_base: Annotated[float, typer.Option(help="First backoff in seconds; doubles per attempt.", min=0)] = 0.5,
    resume: Annotated[Path | None, typer.Option(help="Finish an interrupted run: RUN_DIR's journal is replayed, "
                                                "only what it lacks is sent. Takes the run's own settings.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Probe the endpoint and print what it offers and the "
                                          "requests and tokens each suite would spend; send nothing else.")] = False,
    max_requests: Annotated[int | None, typer.Option(help="Stop (resumably, exit 2) once this many requests have "
                                                     "been sent.", min=1)] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Stop (resumably, exit 2) once this many prompt and "
                                                   "completion tokens have been spent.", min=1)] = None,
):
    """Run the suites against a provider and write result.json, report.html, junit.xml and a journal."""
    from verifier.api import plan, run_dir_of, verify
    from verifier.progress import for_terminal

    if resume is not None:
        given = [name for name, value in (("--base-url", base_url), ("--model", model), ("--suite", suite),
                                          ("--golden", golden), ("--api", api), ("--fault", fault),
                                          ("--quirk", quirk), ("--surface", surface),
                                          ("--score-all", score_all), ("--profile", profile != "full")) if value]
        if given:
            _fail(f"--resume takes the run's own settings; leave out {', '.join(given)}")
    options = dict(api_key=api_key, api_key_env=api_key_env, golden=golden, apis=api, profile=profile, out=out, faults=fault,
                   quirks=quirk, surfaces=surface, drift_method=drift_method, score_all=score_all, timeout=timeout,
                   concurrency=concurrency, retries=retries, retry_base=retry_base, resume=resume)
    if dry_run:
        _print_survey(plan(base_url, model, suite, **options))
        return
    progress = for_terminal()
    try:
        result = verify(base_url, model, suite, progress=progress, max_requests=max_requests, max_tokens=max_tokens,
                        **options)
    finally:
        progress.stop()
    run_dir = run_dir_of(result, out, resume)
    _print_summary(result)
    typer.echo(f"verdict: {result.verdict}")
    typer.echo(f"report: {run_dir / 'report.html'}")
    if _weak_drift(result):
        typer.echo(f"no teacher forcing: the reference can score the provider's own answers instead: "
                   f"gpt-oss-verify score {run_dir}")
    if result.verdict == "error" and any(o.verdict.value == "error" for c in result.checks for o in c.outcomes):
        typer.echo(f"some requests found no service; to send them again: gpt-oss-verify run --resume {run_dir}",
                   err=True)
    raise typer.Exit({"pass": 0, "fail": 1}.get(result.verdict, 2))


def _weak_drift(result) -> bool:
    """Whether the run had a drift suite that neither teacher forcing nor greedy logprobs decided."""
    decided = {c.id for c in result.checks if c.verdict.value in ("pass", "fail")}
    return any(s.name == "drift" for s in result.suites) and not decided & {"drift.teacher_forced",
                                                                             "drift.greedy_logprobs"}


def _print_survey(found) -> None:
    """The capabilities a probe found, and per suite the requests and estimated tokens a run would spend
    (provider text made printable: `messages.printable`)."""
    caps = found.capabilities
    typer.echo(f"endpoint: {found.model} at {found.base_url} ({caps.requests} probe requests, "
               f"{caps.prompt_tokens + caps.completion_tokens} tokens)")
    for _, label, shown, note in caps.rows():
        typer.echo(f"  {label:38} {printable(shown)}" + (f"  ({printable(note)[:150]})"
                                                         if note and shown != "offered" else ""))
    typer.echo(f"{'suite':12} {'requests':>9} {'est. tokens':>12}  drift method")
    for plan in found.plans:
        typer.echo(f"{plan.suite:12} {plan.requests:>9} {plan.tokens:>12,}  {plan.drift_method or '-'}")
    typer.echo(f"{'total':12} {sum(p.requests for p in found.plans):>9} {sum(p.tokens for p in found.plans):>12,}"
               "  (at most: the drift test may stop early)")
    for reason in sorted({r for p in found.plans for r in p.unsupported}):
        typer.echo(f"skipped, unsupported by this endpoint: {printable(reason)[:200]}")


def _print_summary(result) -> None:
    """One line per check; its summary may carry provider text (a capability note, an answer): printable."""
    for check in result.checks:
        mark = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "skip"}[check.verdict.value]
        line = f"{mark:5} {check.id:30} {printable(check.summary)}"
        typer.echo(line if len(line) < 200 else line[:197] + "...")


@app.command()
@guarded
def probe(
    base_url: Annotated[str | None, typer.Option(help="Provider base URL ending in /v1 (default: "
                                                 "$OPENAI_BASE_URL). Without either, the built-in reference "
                                                 "provider is probed.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name to request (required with --base-url).")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="Name of the environment variable holding the API key.")] = None,
    api_key: Annotated[str | None, typer.Option(help="The API key itself (sent to the provider only).")] = None,
    suite: Annotated[list[str] | None, typer.Option(help="Suite to plan for (repeatable). Default: all shipped suites.")] = None,
    golden: Annotated[Path | None, typer.Option(help="Directory of golden files (<suite>.json) for this model.")] = None,
    api: Annotated[list[str] | None, typer.Option(help="Only these API variants and evidence kinds (as `run`).")] = None,
    fault: Annotated[list[str] | None, typer.Option(help="Fault mode of the built-in provider (repeatable).")] = None,
    quirk: Annotated[list[str] | None, typer.Option(help="Server quirk of the built-in provider (repeatable).")] = None,
    surface: Annotated[list[str] | None, typer.Option(help=SURFACE_HELP)] = None,
    drift_method: Annotated[str, typer.Option(help="auto, teacher, greedy or sampling (as `run`).")] = "auto",
    timeout: Annotated[float, typer.Option(help="Per-request limit in seconds.")] = 120.0,
    retries: Annotated[int, typer.Option(help="Attempts per request on outages, rate limits and 5xx.", min=1)] = 5,
):
    """Find what the endpoint offers (a few requests of 1-4 tokens) and what a run would spend on it, per suite."""
    from verifier.api import plan

    _print_survey(plan(base_url, model, suite, api_key=api_key, api_key_env=api_key_env, golden=golden, apis=api,
                       faults=fault, quirks=quirk, surfaces=surface, drift_method=drift_method, timeout=timeout,
                       retries=retries))


@app.command()
@guarded
def serve(
    checkpoint: Annotated[Path | None, typer.Option(help="HF checkpoint directory (default: the conformance checkpoint).")] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    model: Annotated[str | None, typer.Option(help="Served model name.")] = None,
    fault: Annotated[list[str] | None, typer.Option(help="Fault mode to switch on (repeatable); see `faults`.")] = None,
    quirk: Annotated[list[str] | None, typer.Option("--quirk", "--variant", help="Server quirk to switch on: an "
                                                    "honest behaviour (repeatable); see `faults`.")] = None,
    surface: Annotated[list[str] | None, typer.Option(help=SURFACE_HELP)] = None,
    date: Annotated[str | None, typer.Option(help="Pin the conversation date (YYYY-MM-DD); default today.")] = None,
    dtype: Annotated[str, typer.Option(help="fp32 or bf16.")] = "fp32",
):
    """Serve the reference model as an OpenAI-compatible provider."""
    from verifier.serve import parse_names, parse_surfaces, serve_forever
    from verifier.testmodel.compact import NAME, default_checkpoint

    parse_names(fault, quirk)
    parse_surfaces(surface)
    if "fp32" in (quirk or []):
        _fail("--quirk fp32 chooses the precision of `run`'s built-in provider; `serve` takes --dtype fp32")
    ckpt = checkpoint or default_checkpoint()
    typer.echo(f"serving {ckpt} on http://{host}:{port}/v1", err=True)
    serve_forever(ckpt, model or (NAME if checkpoint is None else ckpt.name), host, port, fault, date, dtype, quirk,
                  surface)


@app.command()
def faults():
    """List the built-in provider's fault modes (and the checks each must fail) and server quirks."""
    from verifier.serve.faults import FAULTS, QUIRKS

    typer.echo("Faults (gpt-oss-verify run --fault NAME):")
    for f in sorted(FAULTS.values(), key=lambda f: (f.mode, f.name)):
        typer.echo(f"  {f.name:28} [mode {f.mode}] {f.description}\n  {'':28} seen in: {f.seen_in}\n"
                   f"  {'':28} caught by: {', '.join(f.targets)}"
                   + (f" (run with {' '.join(f.run_args)})" if f.run_args else "")
                   + (f"\n  {'':28} not detected on the shipped checkpoint: {f.undetected}" if f.undetected else ""))
    typer.echo("Server quirks, honest behaviours (gpt-oss-verify run --quirk NAME; every check must still pass):")
    for q in QUIRKS.values():
        typer.echo(f"  {q.name:28} {q.description}")


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
    """Re-render report.html and junit.xml from a result.json (nothing else is read)."""
    from verifier.report import write_reports
    from verifier.result import load

    result = load(result_json)
    target = out or result_json.parent
    target.mkdir(parents=True, exist_ok=True)
    paths = write_reports(result, target)
    typer.echo(f"report: {paths['html']}")
    typer.echo(f"junit: {paths['junit']}")


@app.command()
@guarded
def score(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `run` (its journal is read).")],
    checkpoint: Annotated[Path | None, typer.Option(help="The checkpoint the run's golden came from (default: the "
                                                    "conformance checkpoint, when golden is its).")] = None,
    dtype: Annotated[str | None, typer.Option(help="Reference precision: fp32, bf16 or mxfp4 (default: golden's; "
                                              "scores of another are not reused).")] = None,
    device: Annotated[str, typer.Option(help="Torch device of the reference, e.g. cpu or cuda.")] = "cpu",
):
    """Score the provider's own answers with the reference (offline, resumable) and add drift.reference_scored
    to the run's result.json, report.html and junit.xml: drift evidence that needs no log-probabilities. Exit code:
    the run's verdict with the check in it (0 pass, 1 fail, 2 error)."""
    from verifier.api import score as score_run

    result = score_run(run_dir, checkpoint, dtype, device)
    check = next(c for c in result.checks if c.id == "drift.reference_scored")
    typer.echo(f"drift.reference_scored: {check.verdict.value}: {printable(check.summary)}")
    typer.echo(f"verdict: {result.verdict}")
    typer.echo(f"report: {Path(run_dir) / 'report.html'}")
    raise typer.Exit({"pass": 0, "fail": 1}.get(result.verdict, 2))


@app.command()
@guarded
def compare(
    results: Annotated[list[Path], typer.Argument(help="result.json files written by `run`, one per column.")],
    out: Annotated[Path, typer.Option(help="Where to write the matrix (self-contained HTML).")] = Path("matrix.html"),
    text: Annotated[bool, typer.Option("--text", help="Also print the matrix as a text table.")] = False,
):
    """Compare runs side by side, check by check, with drift figures: one HTML matrix."""
    from verifier.report.compare import text_table, write_compare
    from verifier.result import load

    loaded = [load(path) for path in results]
    if text:
        typer.echo(text_table(loaded), nl=False)
    typer.echo(f"matrix: {write_compare(loaded, out)}")


@app.command()
@guarded
def schema(
    out: Annotated[Path, typer.Option(help="Directory for result-v<N>.schema.json.")] = Path("reports/schema"),
):
    """Export the JSON Schema of result.json (the copy shipped in the package lives in verifier/data/schema/)."""
    from verifier.result import schema_json, schema_path

    out.mkdir(parents=True, exist_ok=True)
    path = schema_path(out)
    path.write_text(schema_json(), encoding="utf-8")
    typer.echo(f"schema: {path}")


@golden_app.command("build")
@guarded
def golden_build(
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint directory, Hugging Face layout (bf16 or MXFP4 "
                                                    "experts) or OpenAI's original/ (default: the conformance checkpoint).")] = None,
    suite: Annotated[list[str] | None, typer.Option(help="Suite (repeatable). Default: all shipped suites.")] = None,
    out: Annotated[Path | None, typer.Option(help="Golden root; files go to OUT/<checkpoint>/<dtype>/<suite>.json.")] = None,
    dtype: Annotated[str | None, typer.Option(help="fp32 or bf16 (default fp32; backend mxfp4-triton: bf16, "
                                              "written as dtype mxfp4).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    backend: Annotated[str, typer.Option(help="transformers (experts dequantised to --dtype) or mxfp4-triton "
                                         "(experts kept MXFP4, Triton kernels; CUDA, Hopper).")] = "transformers",
    batch_size: Annotated[int, typer.Option(help="Turns scored per forward pass (1: each alone, bit-identical "
                                            "to the reference's own scoring).", min=1)] = 1,
    date: Annotated[str | None, typer.Option(help="Conversation date rendered into prompts.")] = None,
    top_k: Annotated[int, typer.Option(help="Top-K log-probabilities kept per position (≥ 20).", min=20)] = 20,
    cases: Annotated[int | None, typer.Option(help="Build only the first N cases of each suite (after --case).",
                                              min=1)] = None,
    case: Annotated[list[str] | None, typer.Option(help="Build only this case (repeatable); suites without any "
                                                   "of them are skipped.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Cap every turn's completion at N tokens (recorded in "
                                                   "the golden's provenance and requests).", min=1)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines on stderr.")] = False,
    tp: Annotated[int, typer.Option(help="Shard the model over N processes (one device each; cpu: gloo, cuda: "
                                    "nccl) under torchrun: transformers' tensor parallelism for attention, "
                                    "expert parallelism for the MoE (backend transformers).", min=1)] = 1,
):
    """Run the reference over suites and write golden records (progress, per turn, on stderr). A golden
    limited by --cases/--case covers only those cases: runs of the whole suite refuse it."""
    import time

    from verifier import golden as store
    from verifier import harmony
    from verifier.paths import golden_dir
    from verifier.reference.build import build, checkpoint_name, limited
    from verifier.reference.engine import Engine
    from verifier.suites import available, load_suite
    from verifier.testmodel.compact import default_checkpoint

    loaded = limited([load_suite(n) for n in suite or available()], cases, case, max_tokens)
    ckpt = checkpoint or default_checkpoint()
    report = None if quiet else (lambda line: typer.echo(line, err=True))
    if tp > 1:
        from verifier.reference.parallel import ShardedJob, build_sharded

        job = ShardedJob(checkpoint=ckpt, suites=suite or available(), out=out or golden_dir(), dtype=dtype or "fp32",
                         device=device, top_k=top_k, batch_size=batch_size, date=date or harmony.DEFAULT_DATE,
                         cases=cases, case_ids=case, max_tokens=max_tokens, quiet=quiet)
        return build_sharded(job, tp, typer.echo, report or (lambda line: None), backend)
    start = time.perf_counter()
    engine = Engine(ckpt, dtype or ("bf16" if backend == "mxfp4-triton" else "fp32"), device, backend=backend)
    if report:
        report(f"loaded {ckpt} ({engine.dtype}, {device}) in {time.perf_counter() - start:.1f} s")
    root = out or golden_dir()
    for s in loaded:
        gf = build(engine, s, date or harmony.DEFAULT_DATE, top_k, progress=report, batch_size=batch_size,
                   max_tokens=max_tokens)
        path = store.save(gf, store.golden_path(root, checkpoint_name(ckpt), engine.dtype, s.name))
        typer.echo(f"{s.name}: {len(gf.records)} records -> {path}")


def _labelled(urls: list[str] | None, labels: list[str] | None) -> dict[str, str]:
    """Endpoint URL -> its name: the label given in the same position, else the URL."""
    names = list(labels or [])
    return {url: names[i] if i < len(names) else url for i, url in enumerate(urls or [])}


@golden_app.command("calibrate")
@guarded
def golden_calibrate(
    golden: Annotated[Path | None, typer.Option(help="Golden directory to calibrate (default: the conformance fp32 golden).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint for local honest engines and perturbations.")] = None,
    honest_dtype: Annotated[list[str] | None, typer.Option(help="Local reference dtype counted as honest (repeatable): "
                                                           "fp32, bf16, or mxfp4 (the mxfp4-triton backend, on "
                                                           "--device cuda).")] = None,
    device: Annotated[str, typer.Option(help="Device of the local honest engines: cpu or cuda.")] = "cpu",
    honest_url: Annotated[list[str] | None, typer.Option(help="Honest endpoint base URL (repeatable), e.g. vLLM.")] = None,
    honest_model: Annotated[str | None, typer.Option(help="Model name at the honest endpoints.")] = None,
    honest_label: Annotated[list[str] | None, typer.Option(help="A name for each --honest-url, in order "
                                                           "(default: the URL).")] = None,
    power_against: Annotated[list[str] | None, typer.Option(help="Local perturbation whose detection to measure "
                                                            "(repeatable); see `gpt-oss-verify faults`.")] = None,
    must_detect: Annotated[list[str] | None, typer.Option(help="Of those, the ones a passing run must have had "
                                                          "the power to catch: a run may stop and pass once "
                                                          "it has scored enough positions for all of them.")] = None,
    greedy_url: Annotated[list[str] | None, typer.Option(help="Honest chat endpoint (repeatable) whose greedy chat "
                                                         "logprobs join the greedy calibration (engines without "
                                                         "prompt scoring, e.g. llama-server); named by "
                                                         "--greedy-label.")] = None,
    greedy_label: Annotated[list[str] | None, typer.Option(help="A name for each --greedy-url, in order "
                                                           "(default: the URL).")] = None,
    simulations: Annotated[int, typer.Option(help="Simulated honest runs.")] = 2000,
    saved: Annotated[bool, typer.Option("--saved", help="Reuse the honest engines' scores saved by the last "
                                        "calibration (calibration-data.json.gz, calibration-greedy-data.json.gz) "
                                        "instead of scoring again.")] = False,
    greedy_answers: Annotated[bool, typer.Option("--greedy-answers", help="Measure honest engines' own greedy "
                                                 "answers to golden's free first turns, which set the departure "
                                                 "margin of drift.reference_scored (hosts without logprobs): the "
                                                 "local reference in each --honest-dtype and each --honest-url "
                                                 "through token-id completions. Without it the last calibration's "
                                                 "are kept (with --saved).")] = False,
    answers_only: Annotated[bool, typer.Option("--answers-only", help="With --greedy-answers: measure only them "
                                               "and write them into the golden's calibration.json, the rest as "
                                               "it is.")] = False,
):
    """Calibrate drift thresholds on honest engines; write calibration.json into the golden directory."""
    from verifier import calibrate
    from verifier.drift.calibration import FILE
    from verifier.paths import golden_dir
    from verifier.runner import DEFAULT_GOLDEN
    from verifier.testmodel.compact import default_checkpoint

    if answers_only and not greedy_answers:
        _fail("--answers-only needs --greedy-answers")
    ignored = {"--greedy-url": greedy_url, "--power-against": power_against, "--must-detect": must_detect}
    if answers_only and (unused := [flag for flag, given in ignored.items() if given]):
        _fail(f"--answers-only measures the greedy answers alone; leave out {', '.join(unused)}")
    root = golden or golden_dir() / DEFAULT_GOLDEN
    plan = calibrate.Plan(
        golden=root, checkpoint=checkpoint or default_checkpoint(), honest_dtypes=honest_dtype or None, device=device,
        endpoints=_labelled(honest_url, honest_label), greedy_endpoints=_labelled(greedy_url, greedy_label),
        model=honest_model, power_against=power_against or [], must_detect=must_detect or [],
        simulations=simulations, saved=saved, answers=greedy_answers)
    if answers_only:
        answered = calibrate.add_greedy_answers(plan).greedy_answers
        for line in calibrate.answer_lines(answered):
            typer.echo(line)
        typer.echo(f"calibration: {root / FILE}")
        return
    result = calibrate.calibrate_golden(plan)
    if result.engine_spread == 1.0:
        typer.echo(f"warning: the honest engines show no step up (one engine, or none within 2x of the loudest), so "
                   f"they cannot show how honest engines differ: the boundary is widened by the declared minimum "
                   f"{result.widening:.2f}x only; add --honest-dtype or --honest-url so other honest engines are not "
                   "flagged", err=True)
    for line in calibrate.report_lines(result):
        typer.echo(line)
    typer.echo(f"calibration: {root / FILE}")


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
