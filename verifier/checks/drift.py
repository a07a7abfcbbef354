"""Numerical drift: the provider's distribution on golden tokens against the reference's, teacher-forced."""

from __future__ import annotations

from pydantic import BaseModel

from verifier import stats
from verifier.checks.base import Outcome, SuiteView, Verdict, check
from verifier.checks.common import thresholds, wide_margin
from verifier.golden import GoldenTurn
from verifier.providers import ScoreResult


class PositionDrift(BaseModel):
    """Drift at one golden position."""

    kl: float
    """Truncated KL(golden || provider) over the golden top-K."""
    delta: float | None
    """Provider minus golden log-probability of the golden token (None if not reported)."""
    margin: float
    """Golden top-1/top-2 margin."""
    top1_agrees: bool


def position_drift(golden: GoldenTurn, score: ScoreResult) -> list[PositionDrift]:
    out = []
    for ref, got in zip(golden.scores, score.positions):
        golden_top = dict(zip(ref.top_ids, ref.top_logprobs))
        provider_top = dict(got.top)
        if got.token_logprob is not None:
            provider_top.setdefault(ref.token, got.token_logprob)
        best = max(provider_top, key=provider_top.get) if provider_top else None
        out.append(PositionDrift(
            kl=stats.truncated_kl(golden_top, provider_top),
            delta=None if got.token_logprob is None else got.token_logprob - ref.logprob,
            margin=ref.margin, top1_agrees=best == ref.top_ids[0]))
    return out


def summarise(per_case: dict[str, list[PositionDrift]]) -> dict:
    allpos = [p for ps in per_case.values() for p in ps]
    kls = [p.kl for p in allpos]
    deltas = [p.delta for p in allpos if p.delta is not None]
    decisive = [p for p in allpos if p.margin >= wide_margin()]
    groups = [[p.kl for p in ps] for ps in per_case.values()]
    return {
        "positions": len(allpos), "cases": len(per_case),
        "mean_kl": stats.mean(kls), "max_kl": max(kls, default=0.0),
        "mean_kl_ci95": list(stats.bootstrap_ci(groups)),
        "rms_delta": stats.rms(deltas), "max_abs_delta": max((abs(d) for d in deltas), default=0.0),
        "top1_disagreements_decisive": sum(not p.top1_agrees for p in decisive),
    }


@check(
    "drift.teacher_forced", "drift",
    title="log-probabilities on golden tokens (teacher-forced) match the reference within calibrated noise",
    why="quantised experts, missing attention sinks, wrong RoPE or another model shift the distribution "
        "long before they change greedy text",
    source="K2-Vendor-Verifier; measured here: int4 experts mean KL 1.2e-3, sinks removed 4.8e-3, top-1 unchanged",
    compares="statistics: mean truncated KL and RMS log-prob error against thresholds from honest engines",
    apis=("completions",), scope="suite",
)
def teacher_forced(view: SuiteView):
    limits = thresholds()["drift"]
    per_case: dict[str, list[PositionDrift]] = {}
    errors = []
    for ex in view.exchanges:
        if ex.variant != "score":
            continue
        if ex.score is None:
            errors.append(ex.error or "no scores")
            continue
        record = view.golden.record(ex.case_id)
        per_case[f"{ex.case_id}#{ex.turn}"] = position_drift(record.turns[ex.turn - 1], ex.score)
    if not per_case:
        reason = errors[0] if errors else "no scoring requests were made"
        verdict = Verdict.SKIP if errors and "no teacher-forced" in reason else Verdict.ERROR
        return [Outcome(verdict=verdict, variant="score", message=f"teacher-forced scoring unavailable: {reason}")]
    summary = summarise(per_case)
    failures = []
    if summary["mean_kl"] > limits["mean_kl"]:
        failures.append(f"mean KL {summary['mean_kl']:.2e} > {limits['mean_kl']:.2e}")
    if summary["rms_delta"] > limits["rms_delta"]:
        failures.append(f"RMS Δℓ {summary['rms_delta']:.2e} > {limits['rms_delta']:.2e}")
    if summary["top1_disagreements_decisive"] > 0:
        failures.append(f"{summary['top1_disagreements_decisive']} confident top-1 disagreements")
    observed = {k: v for k, v in summary.items()}
    if failures:
        return [Outcome(verdict=Verdict.FAIL, variant="score", observed=observed, expected=limits,
                        message="drift beyond honest noise: " + "; ".join(failures))]
    return [Outcome(verdict=Verdict.PASS, variant="score", observed=observed, expected=limits,
                    message=f"{summary['positions']} positions: mean KL {summary['mean_kl']:.1e}, "
                            f"RMS Δℓ {summary['rms_delta']:.1e}, within honest noise")]
