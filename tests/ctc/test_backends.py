"""lmplug.ctc.backends: which options each decoding backend takes, and the scorers a spec loads."""

from __future__ import annotations

import dataclasses

import pytest

from lmplug.constants import LM_PREFILTER
from lmplug.ctc.backends import DecodeSpec, ScorerSpec, check_backend, load_scorers
from lmplug.errors import LmplugError

KENLM = ScorerSpec(kenlm="ngram.arpa")
PYCTC = DecodeSpec(labels="labels.json", backend="pyctcdecode", beam_size=16, mode="word", token_min_logp=-5.0,
                   lexicon=False, history_words=None, lookahead=(), oov_penalty=-10.0, lm_prefilter=LM_PREFILTER,
                   search="numpy", compile=False)


@pytest.mark.parametrize("change, message", [
    ({"lookahead": ("kenlm",)}, "has no look-ahead: expected no --lookahead, found kenlm"),
    ({"history_words": 2}, "expected no --history-words, found 2"),
    ({"oov_penalty": -5.0}, "expected --oov-penalty -10 (the default), found -5"),
    ({"lm_prefilter": 4.0}, "expected no --lm-prefilter, found 4"),
    ({"lexicon": True}, "expected word mode without --lexicon, found --mode word --lexicon"),
    ({"mode": "token"}, "expected word mode without --lexicon, found --mode token"),
    ({"search": "torch"}, "expected no --search/--compile, found --search torch"),
    ({"compile": True}, "expected no --search/--compile, found --search numpy --compile"),
    ({"backend": "flashlight"}, "expected a backend in ('lmplug', 'pyctcdecode'), found 'flashlight'"),
])
def test_pyctcdecode_refuses_options_it_cannot_honour(change, message):
    with pytest.raises(LmplugError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_backend(dataclasses.replace(PYCTC, **change), KENLM)


def test_pyctcdecode_needs_its_kenlm_and_no_transformer():
    check_backend(PYCTC, KENLM)  # its own settings: accepted
    for models in (ScorerSpec(), ScorerSpec(kenlm="ngram.arpa", lm="exp/lm")):
        with pytest.raises(LmplugError, match="expected --kenlm and no --lm"):
            check_backend(PYCTC, models)


def test_lmplug_backend_takes_every_option():
    every = dataclasses.replace(PYCTC, backend="lmplug", lookahead=("lm",), history_words=2, oov_penalty=-3.0,
                                lm_prefilter=8.0, lexicon=True, mode="token", search="torch", compile=True)
    check_backend(every, ScorerSpec(lm="exp/lm"))


@pytest.mark.parametrize("spec, message", [
    (ScorerSpec(vocabulary="v.txt"), "--vocabulary configures the scorer of --lm: expected --lm"),
    (ScorerSpec(word_end=False), "--no-word-end configures the scorer of --lm"),
    (ScorerSpec(lm_unk_offset=-5.0), "--lm-unk-offset configures the scorer of --lm"),
    (ScorerSpec(unigrams="v.txt"), "--unigrams configures the scorer of --kenlm: expected --kenlm"),
])
def test_scorer_options_without_their_scorer_are_refused(spec, message):
    with pytest.raises(LmplugError, match=message):
        load_scorers(spec)


def test_scorers_of_a_spec():
    assert load_scorers(ScorerSpec()) == {}
    assert load_scorers(KENLM, backend="pyctcdecode") == {"kenlm": None}  # pyctcdecode loads its own
