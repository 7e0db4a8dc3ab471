# Two commands do all set-up on a fresh machine: `make test` and `make demo`.
PY := .venv/bin/python
STAMP := .venv/.installed
PYTEST_ARGS ?=

.PHONY: test demo bench env clean

$(STAMP): setup.py tools/setup_env.sh
	bash tools/setup_env.sh

env: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) tools/make_tiny_checkpoint.py work_dirs/demo/tiny-fgclip2 --seed 0
	$(PY) tools/demo.py --checkpoint work_dirs/demo/tiny-fgclip2 --out work_dirs/demo

bench: $(STAMP)
	$(PY) tools/benchmark.py --out work_dirs/bench

clean:
	rm -rf work_dirs .pytest_cache
