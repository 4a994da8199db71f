# The two commands of the README. Both set everything up first (tools/setup.sh, idempotent).
PY := .venv/bin/python
.PHONY: setup demo test

setup:
	bash tools/setup.sh

# The project's claims in minutes (recipes/demo/run.sh): a small LM trained for a few minutes and the
# perplexity of the reference LM (models/lm-bible) beside KenLM's; the real-speech test sets decoded
# with the reference checkpoints and the committed dev weights; one summary table (exp/demo/SUMMARY.md).
demo: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} bash recipes/demo/run.sh

test: setup
	$(PY) -m pytest -q
