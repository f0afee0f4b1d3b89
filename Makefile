# crawl2chat: `make demo` runs the whole pipeline on the bundled sample, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint clean help server server-stop
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip==26.3"
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the pinned dependencies

demo: setup  ## run the whole pipeline on the bundled sample (CPU)
	$(BIN)/crawl2chat run

PORT ?= 4200
server: setup  ## start a Prefect server on 127.0.0.1:$(PORT) and serve the scheduled pipeline
	$(BIN)/python flows/server.py start --port $(PORT)

server-stop:  ## stop what `make server` started
	$(BIN)/python flows/server.py stop

test: setup  ## run the test suite
	$(BIN)/python -m pytest -q

lint: setup  ## ruff
	$(BIN)/ruff check .

clean:  ## remove the environment and all run state (keeps data/demo)
	rm -rf $(VENV) .prefect mlflow.db mlruns data/crawl data/text data/tokens models reports metrics
