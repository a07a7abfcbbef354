"""The checks, one module per family, and their evaluation over a suite's exchanges."""

from __future__ import annotations

from collections import Counter

from verifier.checks import drift, effort, parsing, rendering, structured, tools  # noqa: F401  (registers checks)
from verifier.checks.base import REGISTRY, CheckSpec, ExchangeView, Outcome, SuiteView, Verdict
from verifier.drift.calibration import Calibration
from verifier.exchange import Exchange
from verifier.golden import GoldenFile
from verifier.result import CheckResult, aggregate, evidence_key
from verifier.suites import FAMILIES, Suite

__all__ = ["REGISTRY", "Verdict", "evaluate", "checks_for"]


def ordered() -> list[CheckSpec]:
    """Every registered check, by family (rendering, parsing, tools, structured, effort, drift) then registration."""
    specs = list(REGISTRY.values())
    return sorted(specs, key=lambda s: (FAMILIES.index(s.family), specs.index(s)))


def checks_for(families: list[str]) -> list[CheckSpec]:
    """The checks a run of suites of these families decides (not the offline ones: `gpt-oss-verify score`'s)."""
    return [spec for spec in ordered() if (spec.family in families or spec.every_suite) and spec.scope != "offline"]


def _exchange_outcomes(spec: CheckSpec, suite: Suite, golden: GoldenFile, exchanges: list[Exchange],
                       calibration: Calibration | None) -> list[Outcome]:
    cases = {c.id: c for c in suite.cases}
    out = []
    for ex in exchanges:
        obs = ex.observation
        if obs is None or obs.api not in spec.apis:
            continue
        record = golden.record(ex.case_id)
        turn = record.turns[ex.turn - 1] if ex.turn <= len(record.turns) else None
        view = ExchangeView(case=cases[ex.case_id], exchange=ex, golden=turn, record=record,
                            golden_date=golden.provenance.date, calibration=calibration)
        failure = obs.failure
        if failure is not None and failure.status is not None:  # an HTTP error status: parsing.http_status's to judge
            out.append(view.outcome(Verdict.SKIP, f"HTTP {failure.status}: nothing to check (see parsing.http_status)"))
            continue
        if failure is not None:
            out.append(view.outcome(Verdict.ERROR, f"no usable response: {failure.message}"))
            continue
        outcome = spec.fn(view)
        if outcome is not None:
            out.append(outcome)
    return out


def summarise(outcomes: list[Outcome], verdict: Verdict) -> str:
    counts = Counter(o.verdict.value for o in outcomes)
    if not outcomes:
        return "not applicable to this run"
    first = next((o for o in outcomes if o.verdict == verdict), outcomes[0])
    tally = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    if len(outcomes) == 1:
        return first.line
    where = f" ({first.case_id or ''} {first.variant or ''})".replace("( ", "(").replace(" )", ")")
    return f"{tally}; e.g.{where}: {first.line}" if verdict in (Verdict.FAIL, Verdict.ERROR) else tally


def evaluate(suite: Suite, golden: GoldenFile, exchanges: list[Exchange],
             calibration: Calibration | None = None) -> list[CheckResult]:
    """Apply every check of the suite's families to its exchanges."""
    sent = {(ex.case_id, ex.variant, ex.turn) for ex in exchanges}
    results = []
    for spec in checks_for(suite.families):
        if spec.scope == "suite":
            outcomes = spec.fn(SuiteView(suite=suite, golden=golden, exchanges=exchanges, calibration=calibration))
        else:
            outcomes = _exchange_outcomes(spec, suite, golden, exchanges, calibration)
        for o in outcomes:
            o.suite = suite.name
            if o.exchange is None and (o.case_id, o.variant, o.turn) in sent:
                o.exchange = evidence_key(suite.name, o.case_id, o.variant, o.turn)
        verdict = aggregate(outcomes)
        results.append(CheckResult(id=spec.id, family=spec.family, title=spec.title, why=spec.why, source=spec.source,
                                   compares=spec.compares, verdict=verdict, summary=summarise(outcomes, verdict),
                                   outcomes=outcomes))
    return results


def merge(results: list[CheckResult]) -> list[CheckResult]:
    """Combine results of the same check from several suites into one."""
    merged: dict[str, CheckResult] = {}
    for r in results:
        if r.id not in merged:
            merged[r.id] = r.model_copy(deep=True)
            continue
        m = merged[r.id]
        m.outcomes.extend(r.outcomes)
        m.verdict = aggregate(m.outcomes)
        m.summary = summarise(m.outcomes, m.verdict)
    order = [s.id for s in ordered()]
    return sorted(merged.values(), key=lambda r: order.index(r.id))
