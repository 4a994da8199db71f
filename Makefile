# The two commands of the README. Both set everything up first (tools/setup.sh, idempotent).
PY := .venv/bin/python
.PHONY: setup demo test

setup:
	bash tools/setup.sh

# The embedded default (Debian's bibles): Transformer LM vs KenLM 5-gram, per-word test perplexity.
demo: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} bash recipes/lm/run.sh --scale demo --corpus bible

test: setup
	$(PY) -m pytest -q
