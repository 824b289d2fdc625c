# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install, fine-tune MiniLM on Rotten Tomatoes reviews, print predictions
#   make test   create .venv, install, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch first, pinned to the CPU build: left to pip's resolver, `torch` can pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-fast setup browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet -e apps/monitor
	$(BIN)/python -m pip install --quiet -e apps/support
	$(BIN)/python -m pip install --quiet -e apps/recommend
	touch $@

demo: $(STAMP)
	$(BIN)/lmforge finetune configs/demo.yaml

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# Web pages are tested in a real browser: Debian's chromium, driven by Playwright for Python (Playwright's own
# browser download needs the internet). Installed here where missing; the browser tests skip, saying why, where
# it cannot be installed (no root, no apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } || \
		echo "chromium is not installed and could not be: browser tests will be skipped"

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
