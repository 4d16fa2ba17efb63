# Two commands on a fresh Debian/Ubuntu machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8443
SYSTEM_PACKAGES := chromium firefox-esr coturn redis-server postgresql nginx janus iproute2 webkit2gtk-driver xvfb libgl1-mesa-dri pulseaudio

.PHONY: run test venv system-deps lint types unit e2e certs clean

$(BIN)/flask: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

venv: $(BIN)/flask

certs: venv
	$(BIN)/flask --app backend certs --if-missing

# backend/run.py makes certificates if missing, migrates, and starts coturn, gunicorn and the bot.
run: venv
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m backend.run

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "the tests need these Debian packages:$$missing (run: sudo apt-get install$$missing)"; exit 1; fi; \
	fi

# pwa/js/wire.js is generated from backend/signaling/protocol.py and committed: fail when stale.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/flask --app backend protocol-js --check

types: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests -q

e2e: venv system-deps
	$(BIN)/pytest e2e -q

# Two workers: every browser test on one of them, one after another (e2e/conftest.py groups them,
# as two calls at once would share two cores), the server tests spread over both.
test: venv system-deps lint types
	$(BIN)/pytest -q -rfEs -p no:cacheprovider -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
