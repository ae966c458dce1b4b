# Quickstart targets. Both work on a fresh machine with Python 3.11: they create .venv,
# install the CPU build of torch first (so pip never pulls a multi-GB CUDA build), spandrel without
# its torchvision requirement (PyPI's torchvision is CUDA-only; see pyproject's `upscale` extra), then sakuga.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= out/demo

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q einops && $(BIN)/python -m pip install -q --no-deps 'spandrel>=0.4.2'
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sakuga render examples/pilot/storyboard.yaml --out $(OUT) --gpus 2

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) out
