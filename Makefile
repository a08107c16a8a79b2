# vidpose: the two commands a user needs are `make train EXP=<name>` and `make test`.
# Both install into .venv first when it is missing (torch pinned by constraints.txt).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXP ?= rnn_association
ARGS ?=
CKPT ?=
RESUME ?=
# Every run folder two levels down (runs/<experiment>/<time>); runs/smoke/ and runs/results/
# hold experiment folders at that depth, which are not runs.
RUNS ?= $(patsubst %/config.yaml,%,$(wildcard runs/*/*/config.yaml))
# W&B logs offline unless WANDB_MODE says otherwise, and online under a sweep agent
# (logger.mode=auto): no WANDB_MODE default here, which would hide the sweep from its runs.
export WANDB_SILENT ?= true

.PHONY: install train eval smoke list config data preview test bench report results overfit clean help

help:
	@echo "make train EXP=<name> [ARGS='key=value ...'] [RESUME=last]   train an experiment"
	@echo "make eval EXP=<name> CKPT=<path>                            evaluate a checkpoint"
	@echo "make smoke EXP=<name> [ARGS=...]                            the experiment in seconds (debug=smoke)"
	@echo "make list                                                   list experiments"
	@echo "make config EXP=<name> [ARGS='key=value ... --diff OTHER']    print the resolved config"
	@echo "make data / make preview                                    synthesise default data / contact sheet"
	@echo "make test | make bench | make report"
	@echo "make overfit [METHODS='simple_baseline ...']                 overfit proofs: every method learns 16 samples"
	@echo "make results                                                train what docs/RESULTS.md reports (hours), write it"

$(STAMP): setup.cfg constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(BIN)/vidpose train $(EXP) $(if $(RESUME),--resume $(RESUME)) $(ARGS)

eval: $(STAMP)
	$(BIN)/vidpose eval $(EXP) $(ARGS) $(if $(CKPT),--ckpt $(CKPT))

list: $(STAMP)
	@$(BIN)/vidpose list

# Any experiment in seconds on the tiny synthetic set (debug=smoke), runs under runs/smoke.
smoke: $(STAMP)
	$(BIN)/vidpose train $(EXP) debug=smoke $(ARGS)

config: $(STAMP)
	@$(BIN)/vidpose config $(EXP) $(ARGS)

data: $(STAMP)
	$(BIN)/vidpose data synth

preview: $(STAMP)
	$(BIN)/vidpose data preview

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m vidpose.cli bench

# Overfit proofs (src/vidpose/overfit.py): exits non-zero when a method misses its goal.
overfit: $(STAMP)
	$(BIN)/vidpose overfit $(METHODS)

report: $(STAMP)
	$(BIN)/vidpose report $(RUNS) --out report/report.md

# The results page (src/vidpose/results.py): trains each experiment it reports that has no
# finished run under runs/results (hours on a CPU), then writes docs/RESULTS.md.
results: $(STAMP)
	$(BIN)/vidpose results --runs-dir runs/results --out docs/RESULTS.md

clean:
	rm -rf runs data/synth .pytest_cache
