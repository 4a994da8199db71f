"""Machine translation: n-best lists, features and reranking, MERT tuning, BLEU, and a small NMT system.

Modules: ``nbest`` (n-best I/O, Moses and JSONL), ``rerank`` (named features and the reranker),
``mert`` (feature-weight tuning on dev BLEU), ``metrics`` (sacrebleu evaluation with p-values),
``seq2seq`` (the Transformer encoder-decoder), ``nmt`` (training and beam search of that system).
"""
