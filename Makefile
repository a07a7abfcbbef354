# The two commands of the quick start: `make demo` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=
# `make test` leaves out the real-width tests (gpt-oss-20b's exact widths at 2 layers: 8 GB, about 20 minutes of a
# loaded 2-core machine) and the exhaustive ones (marker `exhaustive`), which do not fit CI's budget beside
# everything else; `make test-all` runs them too
TEST_SELECT ?= -m "not real_width and not exhaustive"
# two pytest-xdist workers: most tests wait on one core (a server, a subprocess), so two share two cores well
TEST_WORKERS ?= 2
SHELL   := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip warns about every missing local index entry; keep its real output, drop that noise
PIP     := $(PY) -m pip install --quiet
QUIET   := 2>&1 | { grep -v "is ignored" || true; }

.PHONY: install demo test test-all lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0 $(QUIET)
	$(PIP) -e '.[test]' $(QUIET)
	$(PY) -c "import verifier, torch, transformers, openai_harmony"
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## demo: install, then verify the built-in reference provider (conformance checkpoint); prints the report path
demo: install
	$(VENV)/bin/gpt-oss-verify run

## test: install, then run the test suite (installs Debian's chromium, for the report's browser test, when missing)
test: install
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(TEST_SELECT) $(PYTEST_ARGS)

## test-all: `make test` with the real-width and exhaustive tests as well
test-all:
	$(MAKE) test TEST_SELECT=

lint: install
	$(VENV)/bin/ruff check verifier tests scripts benchmarks

clean:
	rm -rf $(VENV) reports/2* .pytest_cache
