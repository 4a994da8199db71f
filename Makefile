# The two commands of the README. Both set everything up first (tools/setup.sh, idempotent).
PY := .venv/bin/python
.PHONY: setup demo test

setup:
	bash tools/setup.sh

# The embedded default (Debian's bibles): Transformer LM vs KenLM 5-gram (per-word test perplexity),
# then the speech recipe at demo size (synthetic speech, a small Conformer-CTC, WER with each LM).
demo: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} bash recipes/lm/run.sh --scale demo --corpus bible
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} bash recipes/asr_ctc_fusion/run.sh --scale demo --domains bible

test: setup
	$(PY) -m pytest -q
