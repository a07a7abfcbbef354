"""JUnit XML: one test case per check, so any CI system can gate on a run."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from verifier.result import RunResult
from verifier.verdict import Verdict


def _clean(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (provider text is untrusted)."""
    return "".join(c for c in text if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd")
                   or c > "\uffff")


def render_junit(result: RunResult) -> str:
    counts = {v: sum(1 for c in result.checks if c.verdict == v) for v in Verdict}
    suite = ET.Element("testsuite", name="gpt-oss-verify", tests=str(len(result.checks)),
                       failures=str(counts[Verdict.FAIL]), errors=str(counts[Verdict.ERROR]),
                       skipped=str(counts[Verdict.SKIP]), time=f"{result.duration_s:.2f}",
                       timestamp=_clean(result.created))
    props = ET.SubElement(suite, "properties")
    for name, value in (("model", result.provider.model), ("base_url", result.provider.base_url),
                        ("run_id", result.run_id), ("verdict", result.verdict),
                        ("verifier_version", result.verifier_version), ("schema_version", str(result.schema_version))):
        ET.SubElement(props, "property", name=name, value=_clean(value))
    for check in result.checks:
        case = ET.SubElement(suite, "testcase", classname=_clean(f"gpt_oss_verify.{check.family}"), name=_clean(check.id))
        detail = _clean("\n".join(f"{o.verdict.value}: {o.case_id or ''} {o.variant or ''} {o.line}"
                                  for o in check.outcomes if o.verdict in (Verdict.FAIL, Verdict.ERROR))[:20000])
        if check.verdict == Verdict.FAIL:
            ET.SubElement(case, "failure", message=_clean(check.summary[:500])).text = detail
        elif check.verdict == Verdict.ERROR:
            ET.SubElement(case, "error", message=_clean(check.summary[:500])).text = detail
        elif check.verdict == Verdict.SKIP:
            ET.SubElement(case, "skipped", message=_clean(check.summary[:500]))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
