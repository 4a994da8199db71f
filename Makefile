# The two commands of the README. Both set everything up first (tools/setup.sh, idempotent).
PY := .venv/bin/python
.PHONY: setup demo test

setup:
	bash tools/setup.sh

# The embedded default (Debian's bibles): Transformer LM vs KenLM 5-gram (per-word test perplexity),
# then the speech recipe at demo size (synthetic speech, a small Conformer-CTC, WER with each LM),
# then the translation recipe at demo size (RV1909 Es -> KJV En, n-best reranking with the LM recipe's
# LMs and a channel model, BLEU of each feature set).
demo: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} bash recipes/lm/run.sh --scale demo --corpus bible
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} bash recipes/asr_ctc_fusion/run.sh --scale demo --domains bible
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} bash recipes/mt_nbest_rerank/run.sh --scale demo --corpus bible \
	  --nmt-args "--max-steps 300" --lm exp/lm/demo/bible/lm --kenlm exp/lm/demo/bible/ngram5.bin --lm-normalize lower

test: setup
	$(PY) -m pytest -q
