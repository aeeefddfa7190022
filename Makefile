# vidarch: `make study` runs the default study, `make test` runs the checks CI runs.
# Both create .venv on first use. Without an NVIDIA GPU the CPU build of torch is installed
# first (TORCH=torch==2.13.0; set TORCH_INDEX=https://download.pytorch.org/whl/cpu where that
# index is reachable and PyPI would otherwise hand you a CUDA build).
VENV ?= .venv
PY := $(VENV)/bin/python
STUDY ?= bottom_vs_top
TORCH ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
TORCH_INDEX ?=
# torchcodec must match torch's build: PyPI's newest links CUDA 13, so a CPU torch gets 0.13.0,
# the last CPU wheel there (it loads FFmpeg 4-7 from the system: apt-get install ffmpeg).
TORCHCODEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torchcodec || echo torchcodec==0.13.0)

.PHONY: install study test lint findings dashboard dashboard-findings clean
# the database behind docs/findings.md (scripts/run_studies.sh); committed compressed
FINDINGS_DB ?= docs/findings/findings.db

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q "$(TORCHCODEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

study: install
	$(PY) -m search.run study=$(STUDY)

lint: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

# The fast tests in JOBS processes (pytest-xdist), then the end-to-end ones one at a time (each
# starts Ray; some time signals and leases).
JOBS ?= 2
test: lint
	$(PY) -m pytest -q -m "not slow" -n $(JOBS)
	$(PY) -m pytest -q -m slow --durations=15

# unpacked from the committed .xz only when missing: a study may be writing to it
$(FINDINGS_DB):
	xz -dk $@.xz

findings: install $(FINDINGS_DB)
	$(PY) -m analysis.findings --db $(FINDINGS_DB)

# browse every trial behind docs/findings.md, no training
dashboard-findings: install $(FINDINGS_DB)
	$(VENV)/bin/streamlit run dashboard/app.py -- --db $(FINDINGS_DB)

dashboard: install
	$(VENV)/bin/streamlit run dashboard/app.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
