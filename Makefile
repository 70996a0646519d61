# The whole set-up on a fresh machine is `make book` or `make test`: both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book book-fresh site browser test unit notebooks lab benchmarks train clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]" -c constraints.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Notebooks run through jupyter-cache (book/_build/.jupyter_cache): one whose code is unchanged since the last
# build is not run again. The kernels' shutdown noise (a ZMQError traceback per notebook) is filtered from the log.
# Each kernel runs torch on BOOK_THREADS threads (1 by default): on a busy machine a multi-threaded torch waits
# on threads the other jobs hold, and slows by far more than the share it lost. `make book BOOK_THREADS=2` on an
# idle machine.
BOOK_THREADS ?= 1
book: $(STAMP)  ## execute every notebook on the embedded models and build the website
	@set -o pipefail; OMP_NUM_THREADS=$(BOOK_THREADS) MKL_NUM_THREADS=$(BOOK_THREADS) CONCEPTLAB_STATIC=1 \
	  $(BIN)/jupyter-book build . --config book/_config.yml --toc book/_toc.yml \
	  --path-output book --warningiserror --keep-going 2>&1 | $(BIN)/python book/_ext/quiet_log.py
	@echo "The website is in $(CURDIR)/book/_build/html/index.html"

book-fresh:  ## the same, every notebook run anew (the cache emptied first)
	rm -rf book/_build/.jupyter_cache
	$(MAKE) book

browser:  ## Debian's chromium and chromium-driver for the website's browser test, installed when missing
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null \
	  || { $$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null; }; \
	fi

site: book browser  ## open every page of the built website in headless Chromium (screenshots: book/_build/screens)
	$(BIN)/python -m pytest -q -m site tests/test_site.py

test: unit notebooks site  ## all tests: unit tests, every notebook under nbval, the website in a browser
	@echo "All tests passed (unit tests, notebooks, website)."

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q -m "not site"

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
