# Every target creates the virtual environment it needs; people and CI use them unchanged.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-unit test-integration soak lint bench bench-quick client clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m app

test: $(STAMP)
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest -m redis

# The heavier reliability variants (larger races, longer crash and outage loads), the
# timing-bound start-up-during-rebuild test, the 100k-document migration under load and the
# HA failover and replica-read tests at a larger size.
soak: $(STAMP)
	$(BIN)/python -m pytest tests/reliability tests/integration/test_service_start.py \
		tests/integration/test_migrations_live.py tests/ha -m soak -s

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# A typed Python client of SYSTEM's API from its declarations (no server needed): rerun after
# changing them. README, "Use it from your service". PATH is absolute: the generator runs ruff
# from inside its output directory.
SYSTEM ?= multiframe
client: $(STAMP)
	mkdir -p var/client
	$(BIN)/python -m app --openapi --system $(SYSTEM) > var/client/$(SYSTEM).openapi.json
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/openapi-python-client generate \
		--path var/client/$(SYSTEM).openapi.json \
		--meta none --output-path var/client/$(SYSTEM)_client --overwrite

# redis-om (the peers extra) pulls types-redis, stubs of redis 4 that would shadow redis-py's
# own types for mypy: removed again, nothing imports them at run time.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,peers]' --config-settings editable_mode=compat
	$(BIN)/python -m pip uninstall --quiet -y types-redis
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' --config-settings editable_mode=compat
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache var
