# Two commands do all set-up on a fresh machine: `make test` and `make demo`.
PY := .venv/bin/python
STAMP := .venv/.installed
PYTEST_ARGS ?=
QUICK ?=

.PHONY: test demo bench serve env clean

$(STAMP): setup.py tools/setup_env.sh
	bash tools/setup_env.sh

env: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The whole toolkit end to end on a synthetic world -> work_dirs/demo/report.md (QUICK=1: plumbing check).
demo: $(STAMP)
	$(PY) tools/run_demo.py --out work_dirs/demo $(if $(filter-out 0,$(QUICK)),--quick,)

# The web demo on http://127.0.0.1:7860 (CHECKPOINT=DIR for released weights; default: the models of `make demo`).
serve: $(STAMP)
	$(PY) tools/serve_demo.py $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT),)

bench: $(STAMP)
	$(PY) tools/benchmark.py --out work_dirs/bench

clean:
	rm -rf work_dirs .pytest_cache
