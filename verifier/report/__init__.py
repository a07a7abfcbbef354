"""Reports rendered from a `RunResult`: self-contained HTML for people, JUnit XML for CI systems."""

from __future__ import annotations

from pathlib import Path

from verifier.report.html import render_html
from verifier.report.junit import render_junit
from verifier.result import RunResult

__all__ = ["render_html", "render_junit", "write_reports"]


def write_reports(result: RunResult, run_dir: Path) -> dict[str, Path]:
    """Write report.html and junit.xml next to result.json."""
    paths = {"html": run_dir / "report.html", "junit": run_dir / "junit.xml"}
    paths["html"].write_text(render_html(result), encoding="utf-8")
    paths["junit"].write_text(render_junit(result), encoding="utf-8")
    return paths
