# The whole set-up on a fresh machine is `make book` or `make test`: both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test unit notebooks lab benchmarks train clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

book: $(STAMP)  ## execute every notebook on the embedded models and build the website
	CONCEPTLAB_STATIC=1 $(BIN)/jupyter-book build . --config book/_config.yml --toc book/_toc.yml --path-output book --warningiserror --keep-going
	@echo "The website is in $(CURDIR)/book/_build/html/index.html"

test: unit notebooks  ## all tests: unit tests, then every notebook under nbval
	@echo "All tests passed (unit tests and notebooks)."

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q

notebooks: $(STAMP)
	CONCEPTLAB_STATIC=1 $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env --sanitize-with tests/sanitize.cfg -p no:cacheprovider notebooks

lab: $(STAMP)  ## JupyterLab on the course
	$(BIN)/jupyter lab notebooks

benchmarks: $(STAMP)  ## quality and speed measurements of the embedded models (minutes)
	$(BIN)/python benchmarks/toy_quality.py

train: $(STAMP)  ## retrain the embedded models from scratch (about four hours on 2 cores)
	$(BIN)/python -m conceptlab.toy.train shapes
	$(BIN)/python -m conceptlab.toy.train sounds --vae-steps 700 --unet-steps 4000 --batch 32
	$(BIN)/python -m conceptlab.toy.train sounds --stage unet --unet-steps 5500 --batch 32 --full-captions 0.2
	$(BIN)/python -m conceptlab.toy.train sounds --stage unet --unet-steps 7000 --batch 32 --full-captions 0.0
	$(BIN)/python -m conceptlab.toy.train sounds --stage decoder --decoder-steps 1500 --band-weight 1.0

clean:
	rm -rf book/_build .pytest_cache
