"""What the real-engine harness shares (`verifier.harness.local`), without starting an engine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from verifier.errors import ProviderError
from verifier.harness.local import pinned_clock


def test_a_pinned_clock_says_its_date_to_a_child_process_and_keeps_monotonic_time_real():
    env = pinned_clock("2026-12-01")
    probe = ("import datetime, time; t = time.monotonic(); time.sleep(0.2); "
             "print(datetime.datetime.now().date(), round(time.monotonic() - t, 1))")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["2026-12-01", "0.2"]


def test_a_pinned_clock_refuses_what_is_not_a_date():
    with pytest.raises(ProviderError, match="not a date"):
        pinned_clock("2026-13-01")
