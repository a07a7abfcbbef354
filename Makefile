# The two commands of the quick start: `make demo` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=
# two pytest-xdist workers: most tests wait on one core (a server, a subprocess), so two share two cores well
TEST_WORKERS ?= 2
SHELL   := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip warns about every missing local index entry; keep its real output, drop that noise
PIP     := $(PY) -m pip install --quiet
QUIET   := 2>&1 | { grep -v "is ignored" || true; }

.PHONY: install demo test lint clean

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
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check verifier tests scripts benchmarks

clean:
	rm -rf $(VENV) reports/2* .pytest_cache
