"""Reports rendered from a `RunResult`: self-contained HTML for people, JUnit XML for CI systems, and
the comparison matrix of several runs."""

from __future__ import annotations

from pathlib import Path

from verifier.report.html import render_html
from verifier.report.junit import render_junit
from verifier.result import RunResult

__all__ = ["render_html", "render_junit", "write_reports", "as_written"]


def as_written(result: RunResult, run_dir: Path | None = None) -> RunResult:
    """The result exactly as result.json holds it: the run's own result.json where `run_dir` has it
    (what was written there, redactions included), else a JSON round trip of `result`. Reports are
    rendered from this, never from objects only the run had in memory."""
    path = Path(run_dir) / "result.json" if run_dir is not None else None
    if path is not None and path.is_file():
        try:
            written = RunResult.model_validate_json(path.read_bytes())
        except ValueError:
            written = None
        if written is not None and written.run_id == result.run_id:
            return written
    return RunResult.model_validate_json(result.model_dump_json())


def write_reports(result: RunResult, run_dir: Path) -> dict[str, Path]:
    """Write report.html and junit.xml into `run_dir`, from the result as result.json holds it."""
    result = as_written(result, run_dir)
    paths = {"html": run_dir / "report.html", "junit": run_dir / "junit.xml"}
    paths["html"].write_text(render_html(result), encoding="utf-8")
    paths["junit"].write_text(render_junit(result), encoding="utf-8")
    return paths
