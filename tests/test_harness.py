"""What the real-engine harness shares (`verifier.harness.local`), without starting an engine."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from verifier.errors import ProviderError
from verifier.harness.local import pinned_clock


def test_a_pinned_clock_says_its_date_to_a_child_process_and_keeps_monotonic_time_real():
    probe = "import datetime, time; print(datetime.datetime.now().date(), time.monotonic())"
    before = time.monotonic()
    out = subprocess.run([sys.executable, "-c", probe], env=pinned_clock("2026-12-01"), capture_output=True,
                         text=True, check=True).stdout.split()
    after = time.monotonic()
    assert out[0] == "2026-12-01"
    assert before <= float(out[1]) <= after  # CLOCK_MONOTONIC is the system's: a faked one would be offset


def test_a_pinned_clock_refuses_what_is_not_a_date():
    with pytest.raises(ProviderError, match="not a date"):
        pinned_clock("2026-13-01")
