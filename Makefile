# make train | test | test-slow | test-all | claims | figures | lint | bench | tensorboard | dist
# (ARGS="..." passes arguments on, e.g. make test ARGS="-k resume")
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
ARGS ?=
# torch asked for before the package: this machine's CPU wheel (torch 2.13.0 on disk), where the
# package's own open range would take the newest release, a CUDA build of several GB
TORCH ?= torch==2.13.*

.PHONY: train test test-slow test-all claims figures lint format bench bytecode tensorboard dist clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing mlrefresh and its dependencies into $(VENV) (torch, hydra, tensorboard, ...;"
	@echo "1-3 minutes the first time; pip's progress below)"
	$(BIN)/python -m pip install --disable-pip-version-check "$(TORCH)" -e ".[dev,sweep]"
	$(MAKE) --no-print-directory bytecode
	touch $(STAMP)

# our modules compiled once, as pip compiles an installed package's (an editable install is not
# compiled, and where PYTHONDONTWRITEBYTECODE=1 Python never caches them: 0.15 s every start)
bytecode:
	$(BIN)/python -m compileall -q src scripts

train: $(STAMP)
	$(BIN)/python scripts/train.py $(ARGS)

# the fast tier: every behaviour, in-process (2-4 minutes on 2 cores)
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

# the slow tier: real processes (signals, SIGKILL, disk full, joblib/submitit/SLURM/Optuna
# sweeps, TensorBoard's server), the lecture's claims on new seeds, real Fashion-MNIST
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

claims: $(STAMP)
	$(BIN)/python scripts/claims.py $(ARGS)

# the README's pictures: three lecture graphs, and the five claims' sweeps (runs make claims)
figures: $(STAMP)
	$(BIN)/python scripts/figures.py --out docs/figures --only loss_vs_z grad_vs_z clamped_unit
	$(BIN)/python scripts/claims.py --out outputs/claims
	for e in saturation clamped outliers xor kl; do \
	  $(BIN)/python scripts/figures.py --sweep outputs/claims/$$e --out docs/figures || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m pip install -q "$(TORCH)" -e ".[dev,sweep,bench]"
	$(MAKE) --no-print-directory bytecode
	$(BIN)/python scripts/bench.py $(ARGS)

# the sdist and, built from it, the wheel, in dist/ (pip install dist/mlrefresh-*.whl elsewhere)
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist

# the latest sweep or run under outputs/; ARGS="--all", ARGS="<folder or glob>", ARGS="--port 6007"
tensorboard: $(STAMP)
	$(BIN)/python scripts/open_tensorboard.py $(ARGS)

clean:
	rm -rf outputs dist build .pytest_cache .ruff_cache
