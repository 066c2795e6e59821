# ecgjepa: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= data
RAW_DIR ?= raw
SOURCE ?= all
# The CPU wheel of PyTorch that lies on this kind of machine; users with CUDA install their own torch first.
TORCH_SPEC ?= torch==2.13.0

.PHONY: help install sample-data demo reproduce-small test lint format prepare-data bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python  ## create .venv, install torch (CPU) + ecgjepa[dev], dump the bundled PTB-XL sample
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	$(MAKE) sample-data

sample-data:  ## dump sample_data/ptbxl (real PTB-XL records, 100 Hz -> 500 Hz) into $(DATA_DIR)/sample
	$(BIN)/python -m data_prep ptbxl --raw sample_data/ptbxl --rate 100 --out $(DATA_DIR)/sample --no-progress

demo: install  ## bundled sample: pre-train ViT-XS (CPU, minutes), attentive probe, AUROC + plots in outputs/demo
	rm -rf outputs/demo
	$(BIN)/ecgjepa-train hydra.run.dir=outputs/demo/pretrain
	$(BIN)/ecgjepa-eval encoder=outputs/demo/pretrain dataset=ptbxl_sample task=superdiagnostic \
		protocol.steps=300 protocol.checkpoint_interval=50 hydra.run.dir=outputs/demo/linear
	$(BIN)/ecgjepa-export outputs/demo/pretrain outputs/demo/export
	@echo "demo done: outputs/demo/pretrain/plots/, outputs/demo/linear/{metrics.json,plots/}, outputs/demo/export/"

reproduce-small:  ## JEPA vs random init, attentive probe on the bundled sample, seeds (CPU, ~30 min)
	$(BIN)/python scripts/reproduce_small.py

test:  ## run the test suite (real records in tests/data, CPU)
	$(BIN)/python -m pytest -q

lint:  ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:  ## ruff fix + format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

prepare-data:  ## dump raw sources: make prepare-data SOURCE=ptbxl RAW_DIR=/path/to/ptb-xl DATA_DIR=data
	$(BIN)/python -m data_prep $(SOURCE) --raw $(RAW_DIR) --out $(DATA_DIR)

bench:  ## throughput and memory benchmarks (tables + bench/results/); ORIGINAL=<ECG-JEPA checkout>: side by side; DEVICE=cuda
	$(BIN)/python bench/bench.py $(if $(ORIGINAL),--original $(ORIGINAL)) $(if $(DEVICE),--device $(DEVICE))

clean:  ## remove run outputs and caches (keeps .venv and data)
	rm -rf outputs multirun lightning_logs .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +
