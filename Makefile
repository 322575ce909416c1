# The two commands of the README's quick start: `make demo` and `make test`.
# Both build .venv from this project's own files first, so they work on a fresh clone.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck screenshots install clean

$(BIN)/claude-sessions: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/claude-sessions

demo: install
	$(BIN)/claude-sessions demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# mypy cannot follow the editable install's package-dir mapping, so it reads the namespace through
# a tree of symlinks (.typecheck/prefect_claude_sessions/{tasks,flows,storage} -> the folders).
typecheck: install
	mkdir -p .typecheck/prefect_claude_sessions
	for p in tasks flows storage; do ln -sfn ../../$$p .typecheck/prefect_claude_sessions/$$p; done
	cd .typecheck && ../$(BIN)/mypy --config-file ../pyproject.toml

# The README's pictures of the review loop, retaken by the test that drives it in chromium.
screenshots: install
	CLAUDE_SESSIONS_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/guardrails/test_review_in_the_dashboard.py

clean:
	rm -rf $(VENV) .pytest_cache .typecheck
