"""Adapters: our LMs inside pyctcdecode's BeamSearchDecoderCTC and torchaudio's ctc_decoder."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from ctc_helpers import ambiguous_emission, SENTENCES, one_thread, tiny_arpa, tiny_lm

from lmplug.scorers.kenlm import KenLMScorer

from lmplug.scorers.transformer import TransformerScorer
from lmplug.ctc.simulate import char_labels, simulate_emissions, text_to_char_ids

single_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return tiny_lm(tmp_path_factory.mktemp("lm"), steps=80, seed=0)


def test_pyctcdecode_with_transformer_lm_flips_the_answer(lm):
    pytest.importorskip("pyctcdecode")
    from lmplug.scorers.pyctcdecode_lm import build_pyctcdecode_decoder

    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    labels = char_labels(SENTENCES, delimiter=" ")
    x = ambiguous_emission("the dog ate the bone", labels, frame_of=6, wrong="t")
    sc = TransformerScorer(lm)
    assert build_pyctcdecode_decoder(labels, sc, alpha=0.0, beta=0.0).decode(x, beam_width=8) == "the dot ate the bone"
    assert build_pyctcdecode_decoder(labels, sc, alpha=1.0, beta=0.0).decode(x, beam_width=8) == "the dog ate the bone"


def test_pyctcdecode_adapter_ends_silence_and_closed_words(lm):
    """pyctcdecode scores the empty word at the end of an utterance whose last word is closed (or
    of silence): no word, then </s> unless lm_score_boundary=False."""
    pytest.importorskip("pyctcdecode")
    from lmplug.scorers.pyctcdecode_lm import build_pyctcdecode_decoder

    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    labels = char_labels(SENTENCES, delimiter=" ")
    dec = build_pyctcdecode_decoder(labels, TransformerScorer(lm), alpha=1.0, beta=0.0)
    silence = np.full((5, len(labels)), -20.0, np.float32)
    silence[:, 0] = 0.0
    assert dec.decode(silence) == ""
    text = "the dog ate the bone "  # one label a frame, the last a word delimiter
    x = np.full((len(text), len(labels)), -20.0, np.float32)
    x[np.arange(len(text)), [labels.index(c) for c in text]] = 0.0
    assert dec.decode(x, beam_width=8) == "the dog ate the bone"
    held = len(dec._language_model._keep)
    assert dec.decode(x, beam_width=8) == "the dog ate the bone"
    assert len(dec._language_model._keep) == held  # states of earlier utterances are let go
    with_eos = dec.decode_beams(x, beam_width=8)[0][-1]
    dec.reset_params(lm_score_boundary=False)
    without = dec.decode_beams(x, beam_width=8)[0][-1]
    sc = TransformerScorer(lm)
    state = sc.score_words(sc.init_state(1), ["the"])[1]
    for w in "dog ate the bone".split():
        state = sc.score_words(state, [w])[1]
    assert with_eos - without == pytest.approx(float(sc.final_score(state)[0]), abs=1e-4)


def test_pyctcdecode_adapter_with_kenlm_equals_pyctcdecode_kenlm(tmp_path):
    pyctcdecode = pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    from lmplug.scorers.pyctcdecode_lm import build_pyctcdecode_decoder

    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    arpa = tiny_arpa(tmp_path)
    if arpa is None:
        pytest.skip("lmplz not found next to sys.executable or on PATH")
    labels = char_labels(SENTENCES)
    em = simulate_emissions([text_to_char_ids(t, labels) for t in SENTENCES * 3], labels, seed=2, confusion=0.5)
    theirs = pyctcdecode.build_ctcdecoder(labels, str(arpa), alpha=0.6, beta=0.8)
    ours = build_pyctcdecode_decoder(labels, KenLMScorer(arpa), alpha=0.6, beta=0.8)
    for e in em:
        a, b = theirs.decode_beams(e, beam_width=8)[0], ours.decode_beams(e, beam_width=8)[0]
        assert a[0] == b[0]
        assert a[-1] == pytest.approx(b[-1], abs=1e-4)  # same combined score


def test_torchaudio_lexicon_decoder_with_transformer_lm(lm, tmp_path):
    pytest.importorskip("flashlight.lib.text", reason="flashlight-text not installed (pip install flashlight-text==0.0.7)")
    import torch
    from torchaudio.models.decoder import ctc_decoder

    from lmplug.scorers.torchaudio_lm import TorchaudioLM

    words = sorted({w for s in SENTENCES for w in s.split()} | {"dot"})
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("".join(f"{w} {' '.join(w)} |\n" for w in words))
    lm_dict = tmp_path / "words.txt"  # fixes the decoder's word indices to our word order
    dict_words = ["<unk>"] + words  # torchaudio requires <unk> in lm_dict
    lm_dict.write_text("".join(f"{w}\n" for w in dict_words))
    labels = char_labels(SENTENCES, delimiter="|")
    tokens = ["-"] + labels[1:]  # torchaudio names the blank '-'
    x = ambiguous_emission("the dog ate the bone", labels, frame_of=6, wrong="t")
    em = torch.from_numpy(x).float()[None]
    sc = TransformerScorer(lm)
    out = {}
    for w in (0.0, 0.3):
        dec = ctc_decoder(lexicon=str(lexicon), tokens=tokens, lm=TorchaudioLM(sc, words=dict_words), lm_dict=str(lm_dict), lm_weight=w,
                          beam_size=8, blank_token="-", sil_token="|", word_score=0.0)
        out[w] = " ".join(dec(em)[0][0].words)
    assert out == {0.0: "the dot ate the bone", 0.3: "the dog ate the bone"}


def test_torchaudio_lm_docstring_example_runs(tmp_path, monkeypatch):
    """TorchaudioLM's docstring, line by line (the reference LM, files in the working directory):
    an lm_dict of the given words alone failed in ctc_decoder (no '<unk>'); the adapter appends it."""
    pytest.importorskip("flashlight.lib.text", reason="flashlight-text not installed (pip install flashlight-text==0.0.7)")
    import torch

    from lmplug.checkpoint import load_lm
    from lmplug.scorers.torchaudio_lm import TorchaudioLM

    reference = Path(__file__).resolve().parents[2] / "models" / "lm-bible"
    labels = char_labels(SENTENCES, delimiter="|")
    x = ambiguous_emission("the dog ate the bone", labels, frame_of=6, wrong="t")  # "dot" by a hair
    emissions = torch.from_numpy(x).float()[None]
    monkeypatch.chdir(tmp_path)
    # -- the docstring --
    from torchaudio.models.decoder import ctc_decoder
    words = ["ate", "bone", "dog", "dot", "the"]  # the lexicon's words, in an order you choose
    Path("lexicon.txt").write_text("".join(f"{w} {' '.join(w)} |\n" for w in words))
    lm = TorchaudioLM(TransformerScorer(load_lm(str(reference))), words=words)
    lm.write_lm_dict("lm_dict.txt")  # lm.words: the words, then "<unk>" (ctc_decoder asks for it)
    decoder = ctc_decoder(lexicon="lexicon.txt", tokens=["-"] + labels[1:], lm=lm,
                          lm_dict="lm_dict.txt", lm_weight=0.5, word_score=1.0)
    words = decoder(emissions)[0][0].words
    # -- end --
    assert words == ["the", "dog", "ate", "the", "bone"]
    assert lm.words == ["ate", "bone", "dog", "dot", "the", "<unk>"]
    assert Path("lm_dict.txt").read_text().split() == lm.words
    no_lm = ctc_decoder(lexicon="lexicon.txt", tokens=["-"] + labels[1:], lm=lm, lm_dict="lm_dict.txt",
                        lm_weight=0.0, word_score=1.0)
    assert no_lm(emissions)[0][0].words == ["the", "dot", "ate", "the", "bone"]  # the LM flipped it
    assert TorchaudioLM(lm.scorer, words=["<unk>", "the"], unk_word="<oov>").words == ["<unk>", "the", "<oov>"]


def test_torchaudio_adapter_with_kenlm_equals_torchaudio_kenlm(tmp_path):
    pytest.importorskip("flashlight.lib.text", reason="flashlight-text not installed (pip install flashlight-text==0.0.7)")
    pytest.importorskip("kenlm")
    import torch
    from torchaudio.models.decoder import ctc_decoder

    from lmplug.scorers.torchaudio_lm import TorchaudioLM

    arpa = tiny_arpa(tmp_path)
    if arpa is None:
        pytest.skip("lmplz not found next to sys.executable or on PATH")
    words = ["<unk>"] + sorted({w for s in SENTENCES for w in s.split()})
    lexicon, lm_dict = tmp_path / "lexicon.txt", tmp_path / "words.txt"
    lexicon.write_text("".join(f"{w} {' '.join(w)} |\n" for w in words[1:]))
    lm_dict.write_text("".join(f"{w}\n" for w in words))
    labels = char_labels(SENTENCES, delimiter="|")
    tokens = ["-"] + labels[1:]
    em = simulate_emissions([text_to_char_ids(t, labels) for t in SENTENCES], labels, seed=5, confusion=0.5)
    kw = dict(lexicon=str(lexicon), tokens=tokens, beam_size=8, blank_token="-", sil_token="|", word_score=0.5)
    theirs = ctc_decoder(lm=str(arpa), lm_weight=1.0, **kw)  # flashlight's KenLM: log10 scores
    ours = ctc_decoder(lm=TorchaudioLM(KenLMScorer(arpa, unk_offset=0.0), words=words), lm_dict=str(lm_dict),
                       lm_weight=1.0 / np.log(10), **kw)
    for e in em:
        a, b = theirs(torch.from_numpy(e)[None])[0][0], ours(torch.from_numpy(e)[None])[0][0]
        assert a.words == b.words
        assert a.score == pytest.approx(b.score, abs=1e-3)


def test_torchaudio_lexicon_free_with_transformer_pieces(lm):
    """Lexicon-free decoding over the LM's pieces: the LM scores the pieces; the blank and the
    silence token are no piece (scored 0, history kept); a token that is no piece is refused."""
    pytest.importorskip("flashlight.lib.text", reason="flashlight-text not installed (pip install flashlight-text==0.0.7)")
    import torch
    from torchaudio.models.decoder import ctc_decoder

    from lmplug.scorers.torchaudio_lm import TorchaudioLM
    from lmplug.errors import LmplugError

    tok = lm.tokenizer
    tokens = ["-", "|"] + [p for p in tok.pieces() if p not in ("<unk>", "<s>", "</s>")]
    sc = TransformerScorer(lm)
    with pytest.raises(LmplugError, match=r"expected tokens that are pieces .*found \['THE'\]"):
        TorchaudioLM(sc, tokens=tokens + ["THE"])
    ta = TorchaudioLM(sc, tokens=tokens)
    start = ta.start(False)
    sil, score = ta.score(start, tokens.index("|"))
    assert score == 0.0 and ta.states[sil] is ta.states[start]
    first = tok.encode(SENTENCES[0])[0]
    _, score = ta.score(start, tokens.index(tok.id_to_piece(first)))
    assert score == pytest.approx(float(sc.batch_score(sc.init_state(1))[0, first]), abs=1e-5)
    ids = [[tokens.index(tok.id_to_piece(i)) for i in tok.encode(t)] for t in SENTENCES[:2]]
    em = simulate_emissions(ids, ["<blank>"] + tokens[1:], seed=3, confusion=0.3)  # index 0: the blank
    dec = ctc_decoder(lexicon=None, tokens=tokens, lm=ta, lm_weight=0.5, beam_size=4, beam_size_token=8,
                      blank_token="-", sil_token="|", word_score=0.0)
    texts = [tok.decode([tok.piece_to_id(tokens[i]) for i in dec(torch.from_numpy(e)[None])[0][0].tokens.tolist()
                         if tokens[i] not in ("-", "|")]) for e in em]
    assert texts == SENTENCES[:2]
    one = len(ta.states)  # the last utterance's states only: start() lets the others go
    dec(torch.from_numpy(em[0])[None])
    dec(torch.from_numpy(em[1])[None])
    assert len(ta.states) == one
