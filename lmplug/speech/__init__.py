"""Speech: audio input (``audio``: any rate and libsndfile format to 16 kHz mono), synthetic speech
(``synthesis``), the Conformer-CTC acoustic model (``acoustic``), pretrained front-ends shipped in
PyPI wheels (``frontends``: Whisper base / tiny.en encoder states, hama's phone CTC log-probs; the
``speech`` extra), their float16 feature cache (``cache``), and phone pronunciation lexicons from
hama's G2P (``lexicon``)."""
