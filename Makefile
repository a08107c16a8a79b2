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
RUNS ?= runs/*/*
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

.PHONY: install train eval list config data preview test bench report clean help

help:
	@echo "make train EXP=<name> [ARGS='key=value ...'] [RESUME=last]   train an experiment"
	@echo "make eval EXP=<name> CKPT=<path>                            evaluate a checkpoint"
	@echo "make list                                                   list experiments"
	@echo "make config EXP=<name> [ARGS='key=value ... --diff OTHER']    print the resolved config"
	@echo "make data / make preview                                    synthesise default data / contact sheet"
	@echo "make test | make bench | make report"

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

report: $(STAMP)
	$(BIN)/vidpose report $(RUNS) --out report/report.md

clean:
	rm -rf runs data/synth .pytest_cache
