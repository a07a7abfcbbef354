"""Reports from real runs: result.json follows its committed, documented schema and alone renders the
HTML; JUnit has a test case per check; `compare` puts runs side by side; hostile provider text can
neither run code nor break the layout in a real headless Chromium (test_hostile_* below)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from conftest import run_cli

from verifier.paths import schema_dir
from verifier.result import MAX_TEXT, SCHEMA_VERSION, RunResult, schema_path

SMALL = ["--suite", "harmony", "--suite", "effort", "--suite", "drift", "--api", "chat", "--api", "score"]


def _run(out: Path, *args: str) -> tuple[int, Path]:
    proc = run_cli("run", "--out", str(out), *args)
    report = next((line.split(": ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("report: ")), None)
    assert report, proc.stdout + proc.stderr
    return proc.returncode, Path(report).parent


@pytest.fixture(scope="module")
def honest(tmp_path_factory) -> Path:
    """A small honest run with every figure: harmony, effort and drift on Chat plus teacher forcing."""
    code, run_dir = _run(tmp_path_factory.mktemp("honest"), *SMALL)
    assert code == 0
    return run_dir


@pytest.fixture(scope="module")
def faulty(tmp_path_factory) -> Path:
    code, run_dir = _run(tmp_path_factory.mktemp("faulty"), "--fault", "raw-harmony-content", "--suite", "harmony",
                         "--api", "chat")
    assert code == 1
    return run_dir


def _load(run_dir: Path) -> RunResult:
    return RunResult.model_validate_json((run_dir / "result.json").read_bytes())


# -- result.json and its schema -------------------------------------------------------------------------------


COMMITTED_SCHEMA = schema_dir() / f"result-v{SCHEMA_VERSION}.schema.json"


def _committed_schema() -> dict:
    return json.loads(COMMITTED_SCHEMA.read_text())


def test_committed_schema_is_what_a_fresh_process_exports(tmp_path):
    """verifier/data/schema/ holds exactly what `gpt-oss-verify schema`, run in a new process, writes: a model
    change that is not exported and committed fails here."""
    proc = run_cli("schema", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"schema: {schema_path(tmp_path)}"
    exported = tmp_path / COMMITTED_SCHEMA.name
    assert json.loads(exported.read_text()) == _committed_schema(), \
        "run `gpt-oss-verify schema --out verifier/data/schema` and commit it"
    assert exported.read_text() == COMMITTED_SCHEMA.read_text()


def test_schema_documents_every_field():
    schema = _committed_schema()
    undocumented = [f"{name}.{prop}" for name, model in {**schema["$defs"], "RunResult": schema}.items()
                    for prop, spec in model.get("properties", {}).items() if not spec.get("description")]
    assert not undocumented


def test_result_json_validates_against_the_committed_schema(honest):
    import jsonschema

    jsonschema.validate(json.loads((honest / "result.json").read_text()), _committed_schema())


def test_untrusted_strings_cannot_make_a_result_unwritable():
    """A JSON `\\ud800` escape from a provider is a lone surrogate in Python; 5 MB of output is 5 MB.
    The result keeps valid, bounded text, so result.json can always be written."""
    from verifier.verdict import Outcome, Verdict

    outcome = Outcome(verdict=Verdict.FAIL, message="lone \ud800 surrogate", observed={"content": "A" * 5_000_000,
                                                                                      "k\udcff": ["\udfff"]})
    data = RunResult(run_id="r", created="now", verifier_version="0", apis=[], verdict="fail", duration_s=0,
                     provider={"base_url": "http://x\udc80/v1", "model": "m", "builtin": False}, suites=[],
                     checks=[{"id": "parsing.x", "family": "parsing", "title": "t", "why": "w", "source": "s",
                              "compares": "c", "verdict": "fail", "summary": "s", "outcomes": [outcome]}],
                     cost={})
    text = data.model_dump_json()
    assert "\\ud800" not in text and "\ufffd" in json.loads(text)["checks"][0]["outcomes"][0]["message"]
    assert len(text) < 2 * MAX_TEXT + 2000


def test_harmony_views_show_provider_text_as_plain_tokens():
    """The token-level view: a reply's fields rebuilt as Harmony tokens match golden's tokens for the same
    reply, and control-token text in a provider's tool name stays plain text, never a control token."""
    from verifier import harmony
    from verifier.observation import Observation, ToolCall
    from verifier.report.evidence import fields_view, token_view

    call = ToolCall(id="c", name="get_weather", arguments='{"city":"Tokyo"}')
    ours = fields_view(Observation(api="chat", stream=False, status=200, reasoning="Look it up.", tool_calls=[call],
                                   finish_reason="tool_calls"))
    golden = token_view(harmony.encode_with_specials(
        '<|channel|>analysis<|message|>Look it up.<|end|><|start|>assistant<|channel|>commentary '
        'to=functions.get_weather <|constrain|>json<|message|>{"city":"Tokyo"}<|call|>'))
    assert [m.model_dump() for m in ours.messages] == [m.model_dump() for m in golden.messages]
    assert ours.stop == golden.stop == "<|call|>" and golden.finish_reason == "tool_calls"
    garbled = ToolCall(id="c", name="get_weather<|channel|>commentary", arguments="{}")
    view = fields_view(Observation(api="chat", stream=False, status=200, tool_calls=[garbled], finish_reason="stop"))
    assert view.messages[0].recipient == "functions.get_weather<|channel|>commentary"
    assert view.messages[0].header.count("<|channel|>") == 1 and view.stop == "<|return|>"


# -- the report of a real run -----------------------------------------------------------------------------------


class _Dom(HTMLParser):
    """Elements and attributes of an HTML document (what a browser parsed, for --dump-dom output)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data):
        self.text.append(data)

    def count(self, tag: str) -> int:
        return sum(1 for t, _ in self.tags if t == tag)


def _plots(result: RunResult) -> int:
    """Plots the report draws for a result: per drift figure the statistic, KL and, where calibration
    measured detection, the detection budget; per effort figure the reasoning lengths."""
    figures = [o.figure for c in result.checks for o in c.outcomes if o.figure is not None]
    return sum(1 if f.kind == "effort" else 3 if f.detection else 2 for f in figures)


def _check_rows(dom: _Dom) -> list[str]:
    return [a["id"].removeprefix("check-") for t, a in dom.tags if t == "tr" and a.get("id", "").startswith("check-")]


def test_report_is_self_contained_and_carries_every_figure(honest):
    result = _load(honest)
    html = (honest / "report.html").read_text()
    dom = _Dom(html)
    assert dom.count("script") == 0 and dom.count("link") == 0 and dom.count("img") == 0
    assert not [a for _, attrs in dom.tags for k, a in attrs.items() if k in ("src", "href") and not a.startswith("#")]
    csp = next(a["content"] for t, a in dom.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp
    # plots: drift statistic, KL, detection budget, reasoning length by effort
    assert _plots(result) > 0 and dom.count("svg") == _plots(result)
    assert sorted(_check_rows(dom)) == sorted(c.id for c in result.checks)
    assert f'class="banner {result.verdict}"' in html
    for needle in ("Relative log-odds error per position", "KL(golden", "Detection budget", "Reasoning length by effort"):
        assert needle in html
    drift = next(c for c in result.checks if c.id == "drift.teacher_forced").outcomes[0].figure
    assert drift.kind == "drift" and len(drift.running_median) == sum(len(s.kl) for s in drift.sequences) > 0
    assert drift.boundary_values and drift.detection
    effort = next(c for c in result.checks if c.id == "effort.trend").outcomes[0].figure
    assert effort.kind == "effort" and all(set(g.golden) == {"low", "medium", "high"} for g in effort.groups)
    # every outcome of an exchange points at its evidence, with the Harmony views side by side
    keys = {e.key for e in result.evidence}
    judged = [o for c in result.checks for o in c.outcomes if o.case_id]
    assert judged and all(o.exchange in keys for o in judged)
    chat = next(e for e in result.evidence if e.variant == "chat" and e.suite == "harmony")
    assert chat.provider.source == "fields" and chat.golden.source == "tokens"
    assert [m.channel for m in chat.provider.messages] == [m.channel for m in chat.golden.messages]
    assert chat.provider.stop == chat.golden.stop == "<|return|>"
    assert len(result.evidence) == result.cost.requests
    assert f'id="x{len(result.evidence) - 1}"' in html


def test_report_command_rerenders_the_same_report(honest, tmp_path):
    proc = run_cli("report", str(honest / "result.json"), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "report.html").read_text() == (honest / "report.html").read_text()
    assert (tmp_path / "junit.xml").read_text() == (honest / "junit.xml").read_text()


def test_failing_report_shows_the_harmony_parse_beside_golden(faulty):
    result = _load(faulty)
    html = (faulty / "report.html").read_text()
    assert 'class="banner fail"' in html
    failed = next(c for c in result.checks if c.id == "parsing.no_control_tokens")
    bad = next(o for o in failed.outcomes if o.verdict.value == "fail")
    evidence = next(e for e in result.evidence if e.key == bad.exchange)
    # the raw Harmony lands in content: the provider's reply is one final message, golden's two
    assert [m.channel for m in evidence.provider.messages] == ["final"]
    assert [m.channel for m in evidence.golden.messages] == ["analysis", "final"]
    assert 'class="diff"' in html and "rebuilt from the reply&#39;s fields" in html


def test_junit_has_one_test_case_per_check(faulty):
    result = _load(faulty)
    suite = ET.parse(faulty / "junit.xml").getroot()
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.id for c in result.checks]
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == {c.id for c in result.checks if c.verdict.value == "fail"} and failed
    assert int(suite.get("failures")) == len(failed) and int(suite.get("tests")) == len(cases)
    skipped = {c.get("name") for c in cases if c.find("skipped") is not None}
    assert skipped == {c.id for c in result.checks if c.verdict.value == "skip"}


# -- compare ----------------------------------------------------------------------------------------------------


class _Matrix(HTMLParser):
    """Rows of the matrix table: the check id and each column's verdict badge."""

    def __init__(self, html: str):
        super().__init__()
        self.rows: dict[str, list[str | None]] = {}
        self.row: list[str | None] | None = None
        self.check: str | None = None
        self.in_code = False
        self.in_badge = False
        self.cell = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self.row, self.check, self.cell = [], None, 0
        elif tag == "td" and self.row is not None:
            self.cell += 1
            if self.cell > 1:
                self.row.append(None)
        elif tag == "code":
            self.in_code = True
        elif tag == "span" and (attrs.get("class") or "").startswith("v ") and self.row is not None and self.row:
            self.in_badge = True

    def handle_endtag(self, tag):
        if tag == "code":
            self.in_code = False
        elif tag == "span":
            self.in_badge = False
        elif tag == "tr" and self.check:
            self.rows[self.check] = self.row

    def handle_data(self, data):
        if self.in_code and self.cell == 1:
            self.check = data
        elif self.in_badge:
            self.row[-1] = data


def test_compare_puts_runs_side_by_side(honest, faulty, tmp_path):
    out = tmp_path / "matrix.html"
    proc = run_cli("compare", str(honest / "result.json"), str(faulty / "result.json"), "--out", str(out), "--text")
    assert proc.returncode == 0, proc.stderr
    assert f"matrix: {out}" in proc.stdout
    a, b = _load(honest), _load(faulty)
    rows = _Matrix(out.read_text()).rows
    for check in a.checks:
        assert rows[check.id][0] == check.verdict.value, check.id
    for check in b.checks:
        assert rows[check.id][1] == check.verdict.value, check.id
    assert rows["parsing.no_control_tokens"] == ["pass", "fail"]
    assert rows["drift.teacher_forced"] == ["pass", None]  # the second run had no drift suite
    html = out.read_text()
    assert "fault raw-harmony-content" in html and a.provider.base_url in html and b.created in html
    assert re.search(r"median 0\.\d{4} ≤ boundary 0\.\d{4}", html)  # the drift figures of the honest run
    # one panel of running medians per drift check that has a figure in either run
    drift_checks = {c.id for r in (a, b) for c in r.checks
                    if c.family == "drift" and any(o.figure and o.figure.running_median for o in c.outcomes)}
    assert drift_checks and _Dom(html).count("script") == 0 and _Dom(html).count("svg") == len(drift_checks)
    # the text table: a column per run, a line per check
    line = next(line for line in proc.stdout.splitlines() if line.startswith("parsing.no_control_tokens"))
    assert line.split()[1:] == ["pass", "FAIL"]
    assert re.search(r"^drift\.teacher_forced\s+pass 0\.\d{4}/0\.\d{4}@\d+\s+-$", proc.stdout, re.M)


@pytest.mark.parametrize("content,needle", [(None, "no result file"), ("{broken", "not JSON"),
                                            ('{"schema_version": 1}', "not a result.json of this verifier"),
                                            ('{"schema_version": 99}', "has result schema v99")])
def test_compare_refuses_what_is_not_a_result(honest, tmp_path, content, needle):
    bad = tmp_path / "result.json"
    if content is not None:
        bad.write_text(content)
    proc = run_cli("compare", str(honest / "result.json"), str(bad), "--out", str(tmp_path / "m.html"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpt-oss-verify: error: ") and needle in lines[0]
    assert not (tmp_path / "m.html").exists()


# -- hostile provider text in a real headless Chromium ----------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                    reason="chromium is not installed (`make test` installs Debian's chromium "
                                    "package; in CI its absence fails the test)")


def _marker(name: str) -> str:
    return f"document.documentElement.setAttribute('data-pwned-{name}','1')"


PAYLOADS = {
    "script": f"<script>{_marker('script')}</script>",
    "img": f'<img src=x onerror="{_marker("img")}">',
    "svg": f'<svg onload="{_marker("svg")}"></svg>',
    "toggle": f'<details open ontoggle="{_marker("toggle")}">x</details>',
    "iframe": f'<iframe src="javascript:parent.{_marker("iframe")}"></iframe>',
    "link": f'<a href="javascript:{_marker("link")}">click me</a>',
    "breaker": f"</textarea></summary></details></pre></code></td></tr></table></section><script>{_marker('breaker')}</script>",
    "attribute": f'"><script>{_marker("attribute")}</script>',
    "single": f"'><img src=x onerror={_marker('single')}>",
    "style": f"</style><script>{_marker('style')}</script><style>body{{display:none}}</style>",
    "title": f"</title><script>{_marker('title')}</script>",
    "svgtext": f"</text></svg><script>{_marker('svgtext')}</script>",
    "object": f'<object data="data:text/html,<script>parent.{_marker("object")}</script>"></object>',
    "meta": f'<meta http-equiv="refresh" content="0;url=javascript:{_marker("meta")}">',
    "template": "{{ 7*7 }}{% raw %}${7*7}",
    "rtl": "\u202eevil\u202c ok \u2066isolated\u2069 \u200f",
    "controls": "NUL\x00 BEL\x07 ESC\x1b[31m DEL\x7f FF\x0c NEL\x85 ZWSP\u200b LS\u2028",
    "surrogates": "lone \ud800 and \udfff",
    "invalid_utf8": b"bytes \xff\xfe\xc3\x28 \xed\xa0\x80 end".decode("utf-8", "surrogateescape"),
    "comment": "<!-- ",
    "plaintext": "<plaintext>",
}
"""Provider text that would run code, escape its element, restyle or swallow the page if written raw."""
LONG_WORD = "W" * 60_000
HUGE = "A" * 5_000_000
LITERALS = {"pass", "fail", "error", "skip", "tokens", "fields", "drift", "effort"}
"""Enum and discriminator values: a provider cannot choose them, so they stay."""


def _inject(value, counter: list[int], key: str = ""):
    """Every provider-reachable string of a result.json, with a payload appended (cycling)."""
    if isinstance(value, dict):
        return {k: _inject(v, counter, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_inject(v, counter, key) for v in value]
    if isinstance(value, str) and value not in LITERALS and key not in ("family", "schema_version"):
        counter[0] += 1
        return value + list(PAYLOADS.values())[counter[0] % len(PAYLOADS)]
    return value


def hostile_result(source: Path) -> dict:
    data = _inject(json.loads(source.read_text()), [0])
    data["provider"]["model"] = "".join(PAYLOADS.values()) + LONG_WORD
    data["provider"]["base_url"] = PAYLOADS["attribute"] + PAYLOADS["link"] + LONG_WORD
    data["evidence"][0]["response"] = HUGE
    replied = next(e for e in data["evidence"] if e["provider"] and e["provider"]["messages"])
    replied["provider"]["messages"][0]["text"] = LONG_WORD
    replied["provider"]["messages"][0]["header"] = [PAYLOADS["script"], LONG_WORD, PAYLOADS["rtl"]]
    first = data["checks"][0]["outcomes"][0]
    first["verdict"], first["observed"], first["message"] = "fail", {"content": HUGE}, LONG_WORD
    data["checks"][0]["verdict"], data["verdict"] = "fail", "fail"
    data["checks"][0]["summary"] = LONG_WORD
    return data


def _chromium(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    assert CHROMIUM, "chromium is not installed: `make test` should have installed Debian's chromium package"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
                               "--virtual-time-budget=3000", *args, url],
                              capture_output=True, text=True, timeout=timeout)


def _fired(dom: str) -> set[str]:
    """Markers set by payloads that ran: attributes named data-pwned-* (never text, which escaping keeps)."""
    return {k.removeprefix("data-pwned-") for _, attrs in _Dom(dom).tags for k in attrs if k.startswith("data-pwned")}


def _png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit, non-interlaced RGB(A) PNG (Chromium's screenshots)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        body, pos = data[pos + 8:pos + 8 + length], pos + 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    assert depth == 8 and interlace == 0 and color in (2, 6)
    bpp = 3 if color == 2 else 4
    raw, stride, rows = zlib.decompress(idat), width * bpp, []
    prev = bytes(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif kind in (1, 3, 4):
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                up, corner = prev[x], prev[x - bpp] if x >= bpp else 0
                if kind == 1:
                    line[x] = (line[x] + left) & 255
                elif kind == 3:
                    line[x] = (line[x] + (left + up) // 2) & 255
                else:
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        prev = rows[-1]
    if bpp == 4:
        rows = [b"".join(r[i:i + 3] for i in range(0, len(r), 4)) for r in rows]
    return width, height, rows


def _verdict_colour(html: str, verdict: str) -> bytes:
    """The RGB the report's own stylesheet gives a verdict (`--fail: #cf222e;`)."""
    found = re.search(rf"--{verdict}:\s*#([0-9a-fA-F]{{6}})", html)
    assert found, f"no colour for {verdict} in the report's stylesheet"
    return bytes.fromhex(found.group(1))


def _banner_pixel(pixels: list[bytes]) -> bytes:
    """A pixel inside the verdict banner, left of its heading text (top left of the page)."""
    return pixels[30][100 * 3:100 * 3 + 3]


@needs_chromium
def test_banner_colour_follows_the_verdict(honest, faulty, tmp_path):
    """The banner is painted in the colour of the run's verdict: pass and fail reports, in Chromium."""
    seen = {}
    for run_dir in (honest, faulty):
        verdict = _load(run_dir).verdict
        shot = tmp_path / f"{verdict}.png"
        _chromium((run_dir / "report.html").as_uri(), f"--screenshot={shot}", "--window-size=1280,400")
        seen[verdict] = _banner_pixel(_png(shot)[2])
        assert seen[verdict] == _verdict_colour((run_dir / "report.html").read_text(), verdict), verdict
    assert set(seen) == {"pass", "fail"} and seen["pass"] != seen["fail"]


@needs_chromium
def test_hostile_payloads_cannot_run_in_a_raw_page_either_unless_escaped(tmp_path):
    """The detector can fail: the same payloads written raw (no escaping, no CSP) do run in Chromium."""
    page = tmp_path / "control.html"
    order = [p for name, p in PAYLOADS.items() if name not in ("comment", "plaintext")]
    page.write_text("<!DOCTYPE html><html><head><title>control</title></head><body>" + "".join(order)
                    + "</body></html>", encoding="utf-8", errors="replace")
    proc = _chromium(page.as_uri(), "--dump-dom")
    fired = _fired(proc.stdout)
    assert {"script", "img", "svg", "toggle", "breaker", "attribute", "single"} <= fired, (fired, proc.stderr[-2000:])


@needs_chromium
def test_hostile_provider_text_is_inert_in_the_report(honest, tmp_path):
    """Payloads in every provider-derived string of a real result.json: rendered through `report`,
    opened in headless Chromium, none runs, no element escapes, the page renders and wraps."""
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    result = RunResult.model_validate(hostile_result(honest / "result.json"))
    (hostile / "result.json").write_text(result.model_dump_json(), encoding="utf-8")
    assert (hostile / "result.json").stat().st_size < 2_000_000  # the 5 MB output is cut to an excerpt
    proc = run_cli("report", str(hostile / "result.json"))
    assert proc.returncode == 0, proc.stderr
    report = hostile / "report.html"
    assert report.stat().st_size < 2_000_000
    junit = ET.parse(hostile / "junit.xml").getroot()  # XML-invalid characters dropped, the rest escaped
    assert len(junit.findall("testcase")) == len(result.checks)

    dom = _chromium(report.as_uri(), "--dump-dom").stdout
    assert not _fired(dom)
    parsed = _Dom(dom)
    for tag in ("script", "iframe", "object", "embed", "img", "link", "base", "form", "plaintext", "textarea"):
        assert parsed.count(tag) == 0, tag
    assert parsed.count("style") == 1 and parsed.count("title") == 1 and parsed.count("svg") == _plots(result)
    honest_meta = [a for t, a in _Dom((honest / "report.html").read_text()).tags if t == "meta"]
    assert [a for t, a in parsed.tags if t == "meta"] == honest_meta  # the template's own: no injected refresh
    assert not [k for _, attrs in parsed.tags for k in attrs if k.startswith("on")]
    assert not [v for _, attrs in parsed.tags for k, v in attrs.items() if k in ("href", "src") and not v.startswith("#")]
    assert len(_check_rows(parsed)) == len(result.checks)  # ids carry payloads, shown with controls made visible
    ids = {a.get("id") for _, a in parsed.tags}
    assert {"verdict", "summary", "run", "exchanges", f"x{len(result.evidence) - 1}"} <= ids
    assert "rendered from result.json" in "".join(parsed.text)  # the page's last line: nothing swallowed the rest
    assert "⟨U+202E⟩" in dom and "␀" in dom and "{{ 7*7 }}" in dom

    shot = tmp_path / "hostile.png"
    _chromium(report.as_uri(), f"--screenshot={shot}", "--window-size=1280,2000")
    width, height, pixels = _png(shot)
    assert (width, height) == (1280, 2000)
    colors = {row[i:i + 3] for row in pixels[::7] for i in range(0, len(row), 21)}
    assert len(colors) > 50, "the screenshot is blank or nearly uniform"
    assert result.verdict == "fail"
    banner = _banner_pixel(pixels)
    assert banner == _verdict_colour(dom, "fail"), f"no FAIL-coloured banner at the top ({banner.hex()})"
    background = bytes((0xf6, 0xf8, 0xfa))
    margin = {row[x * 3:x * 3 + 3] for row in pixels for x in range(1246, 1278)}
    assert margin == {background}, "something overflowed into the right margin: long text did not wrap"
    print(f"hostile report: {report}\nscreenshot: {shot}")


def test_the_structured_family_has_its_section_in_html_and_its_class_in_junit():
    """A run whose checks include the `structured` family: the HTML has the family's section and summary row,
    JUnit one test case per structured check under `gpt_oss_verify.structured`."""
    from verifier.report.html import render_html
    from verifier.report.junit import render_junit
    from verifier.verdict import Outcome, Verdict

    def check(check_id: str, verdict: str) -> dict:
        return {"id": check_id, "family": check_id.split(".")[0], "title": "t", "why": "w", "source": "s",
                "compares": "c", "verdict": verdict, "summary": "s",
                "outcomes": [Outcome(verdict=Verdict(verdict), message="m", case_id="rf", variant="chat", turn=1)]}

    ids = ["parsing.no_empty_answer", "structured.valid_json", "structured.schema_valid", "structured.final_only"]
    verdicts = ["pass", "pass", "pass", "fail"]
    result = RunResult(run_id="r", created="now", verifier_version="0", apis=["chat"], verdict="fail", duration_s=0,
                       provider={"base_url": "http://x/v1", "model": "m", "builtin": False}, suites=[],
                       checks=[check(i, v) for i, v in zip(ids, verdicts)], cost={})
    html = render_html(result)
    assert 'id="family-structured"' in html and 'href="#family-structured"' in html
    assert html.index('id="family-parsing"') < html.index('id="family-structured"')
    cases = ET.fromstring(render_junit(result)).findall("testcase")
    structured = [c for c in cases if c.get("classname") == "gpt_oss_verify.structured"]
    assert [c.get("name") for c in structured] == ids[1:]
    assert [c.get("name") for c in structured if c.find("failure") is not None] == ["structured.final_only"]
