"""CTC decoding: beam search with named LM scorers fused in, and what surrounds it.

Modules: ``decoder`` (the public decoder and its factory), ``types`` (its public types: the config
``CTCDecoderConfig``, the result ``CTCHypothesis``, feature names), ``plan`` (the frozen ``SearchPlan``
the decoder hands a search engine, with its word tries), ``search`` (the beam search on the host,
numpy; its prefix trie in ``trie``), ``torch_search`` (the same search as tensor operations on a device), ``labels`` (the label set), ``lexicon`` (pronunciation lexicons: words spelled in any labels, e.g. phones), ``io`` (emissions and labels on disk), ``tune`` (weights on dev WER),
``rescore`` (n-best rescoring), ``pyctcdecode_backend`` (the baseline), ``simulate`` (emissions made
from text for tests and benchmarks). Imports point down: into ``lmplug.scorers`` and the LM core.
"""
