"""CTC lexicon decoding over a token set (phones): labels with a word boundary, the Lexicon type and
its file, and the decoder spelling lexicon words (homophones ranked by KenLM)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmplug.ctc.decoder import build_ctc_decoder
from lmplug.ctc.labels import build_labels
from lmplug.ctc.lexicon import Lexicon, build_lexicon, read_lexicon, write_lexicon
from lmplug.errors import LmplugError
from lmplug.scorers.zero import ZeroScorer

LABELS = ["<blank>", "<wb>", "DH", "EH", "R", "K", "AE", "T", "S", "IH", "AH", "IY", "Z"]
PRONS = {
    "their": [["DH", "EH", "R"]], "there": [["DH", "EH", "R"]],  # homophones
    "cat": [["K", "AE", "T"]], "cats": [["K", "AE", "T", "S"]], "sit": [["S", "IH", "T"]],
    "the": [["DH", "AH"], ["DH", "IY"]],  # two pronunciations
    "is": [["IH", "Z"]],
}
# a bigram model: "their cat", "sit there", "the cat is there" (hand-written, log10)
ARPA = """\\data\\
ngram 1=10
ngram 2=10

\\1-grams:
-1.5\t<unk>\t0
-99\t<s>\t-0.5
-1.0\t</s>\t0
-1.0\ttheir\t-0.5
-1.0\tthere\t-0.5
-1.0\tcat\t-0.5
-1.0\tsit\t-0.5
-1.0\tthe\t-0.5
-1.0\tis\t-0.5
-1.5\tcats\t-0.5

\\2-grams:
-0.1\t<s> their
-0.1\t<s> sit
-0.3\t<s> the
-0.1\ttheir cat
-0.1\tsit there
-0.1\tthe cat
-0.1\tcat is
-0.1\tis there
-0.1\tcat </s>
-0.1\tthere </s>

\\end\\
"""


def peaky(tokens: list[str], labels: list[str] = LABELS, gap: bool = True) -> np.ndarray:
    """(1, T, V) log-probs: each token for one frame (then a blank frame with ``gap``)."""
    rows = []
    for t in tokens:
        for k in ([labels.index(t), 0] if gap else [labels.index(t)]):
            r = np.full(len(labels), -4.0)
            r[k] = 3.0
            rows.append(r)
    x = np.array(rows)
    return (x - np.log(np.exp(x).sum(1, keepdims=True)))[None].astype(np.float32)


@pytest.fixture(scope="module")
def kenlm(tmp_path_factory):
    pytest.importorskip("kenlm")
    from lmplug.scorers.kenlm import KenLMScorer

    path = tmp_path_factory.mktemp("arpa") / "tiny.arpa"
    path.write_text(ARPA)
    return KenLMScorer(path)


# -- labels -----------------------------------------------------------------------------------

def test_token_labels_with_a_word_boundary():
    lab = build_labels(LABELS)
    assert (lab.style, lab.blank_id, lab.delimiter_id) == ("tokens", 0, 1)
    assert lab.spell([2, 3, 4, 1, 5, 6, 7]) == "DHEHR KAET"  # without a lexicon: tokens run together
    # hama's phones: <pad> is a G2P symbol, <blank> (last) the blank; " " a token, not the delimiter
    hama = build_labels(["<pad>", "<unk>", " ", "a", "aɪ", "ð", "<wb>", "<blank>"])
    assert (hama.style, hama.blank_id, hama.delimiter_id) == ("tokens", 7, 6)
    other = build_labels(["_", "SIL", "AA", "B"], word_delimiter="SIL")
    assert (other.style, other.blank_id, other.delimiter_id) == ("tokens", 0, 1)
    assert build_labels(["", "|", "a", "b"], word_delimiter="|").style == "characters"


def test_character_and_sentencepiece_labels_keep_their_style():
    assert build_labels(["", " ", "a", "b"]).style == "characters"
    assert build_labels(["<blank>", "▁a", "b"]).style == "sentencepiece"
    with pytest.raises(LmplugError, match="exactly one CTC blank"):  # characters: <pad> and <blank> stay ambiguous
        build_labels(["<pad>", "<blank>", " ", "a"])


@pytest.mark.parametrize("labels, kw, message", [
    (LABELS, {"word_delimiter": "SIL"}, "expected the word_delimiter 'SIL' among the labels"),
    (["<blank>", "AA", "B"], {"word_delimiter": "<blank>"}, "expected a word_delimiter other than the blank"),
    (["<blank>", "AA", "B"], {}, "expected a word delimiter label"),
])
def test_bad_token_labels(labels, kw, message):
    with pytest.raises(LmplugError, match=message):
        build_labels(labels, **kw)


# -- the lexicon ------------------------------------------------------------------------------

def test_lexicon_file_round_trip(tmp_path):
    path = tmp_path / "lexicon.txt"
    assert write_lexicon(path, PRONS) == 8
    lex = read_lexicon(path, LABELS)
    assert isinstance(lex, Lexicon) and len(lex) == 7 and "their" in lex
    assert lex["the"] == (("DH", "AH"), ("DH", "IY")) and lex["there"] == (("DH", "EH", "R"),)
    assert lex.entries["cat"] == ((5, 6, 7),)
    assert lex.signature() == build_lexicon(PRONS, LABELS, source=str(path)).signature()
    table, homophones, words = lex.trie()
    st = 0
    for t in (2, 3, 4):
        st = table[st, t]
    assert sorted(words[i] for i in homophones[st] if i >= 0) == ["their", "there"]


def test_lexicon_file_format_details(tmp_path):
    path = tmp_path / "lexicon.txt"  # a trailing delimiter is dropped, repeats once, blank lines skipped
    path.write_text("cat\tK AE T <wb>\ncat\tK AE T\n\nsit S IH T\nthe\tDH AH\nthe\tDH IY\n")
    lex = read_lexicon(path, build_labels(LABELS))
    assert lex.entries == {"cat": ((5, 6, 7),), "sit": ((8, 9, 7),), "the": ((2, 10), (2, 11))}


@pytest.mark.parametrize("text, message", [
    ("cat\tK AE T\ndog\tD AO G\n", r"lexicon.txt:2: unknown token 'D' in the pronunciation of 'dog': expected one of "
                                   r"the labels \(13, tokens style\) \['DH', 'EH'"),
    ("cat\tK AE T\nsit\t\n", r"lexicon.txt:2: expected 'word<TAB>tok tok \.\.\.' \(a word and a non-empty"),
    ("cat\n", r"lexicon.txt:1: expected 'word<TAB>tok tok"),
    ("cat\t<wb>\n", r"lexicon.txt:1: expected a non-empty pronunciation for 'cat'"),
    ("cat\tK <blank> T\n", r"lexicon.txt:1: expected the pronunciation of 'cat' to spell labels other than the blank"),
    ("cat\tK <wb> T\n", r"lexicon.txt:1: .* other than the word delimiter, found '<wb>'"),
    ("\n\n", r"lexicon.txt: expected at least one 'word<TAB>tok tok \.\.\.' line, found none"),
])
def test_bad_lexicon_files_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "lexicon.txt"
    path.write_text(text)
    with pytest.raises(LmplugError, match=message):
        read_lexicon(path, LABELS)


def test_bad_lexicons_in_memory(tmp_path):
    with pytest.raises(LmplugError, match="lexicon not found: expected a file"):
        read_lexicon(tmp_path / "missing.txt", LABELS)
    with pytest.raises(LmplugError, match="found the string 'K AE T'"):
        build_lexicon({"cat": ["K AE T"]}, LABELS)
    with pytest.raises(LmplugError, match="needs labels with a word delimiter .* found sentencepiece"):
        build_lexicon({"a": [["▁a"]]}, ["<blank>", "▁a", "b"])
    with pytest.raises(LmplugError, match="expected lexicon words without whitespace"):
        write_lexicon(tmp_path / "x.txt", {"a b": [["K"]]})


# -- decoding ---------------------------------------------------------------------------------

def _decoder(**kw):
    kw.setdefault("beam_size", 8)
    return build_ctc_decoder(LABELS, kw.pop("scorers", None), kw.pop("weights", None),
                             lexicon=kw.pop("lexicon", build_lexicon(PRONS, LABELS)), **kw)


def test_decoder_spells_lexicon_words_with_their_frames():
    (best,) = _decoder().decode(peaky(["K", "AE", "T", "<wb>", "S", "IH", "T"]))[0]
    assert best.text == "cat sit"
    assert best.tokens == [5, 6, 7, 1, 8, 9, 7]
    assert best.word_frames == [(0, 5), (8, 13)] and best.scores["words"] == 2.0
    # each pronunciation of "the" reaches it
    for pron in (["DH", "AH"], ["DH", "IY"]):
        assert _decoder().decode(peaky(pron + ["<wb>", "K", "AE", "T"]))[0][0].text == "the cat"


def test_words_end_without_a_delimiter_only_with_implicit_boundaries():
    x = peaky(["K", "AE", "T", "S", "IH", "T"])
    (best,) = _decoder(implicit_boundaries=True).decode(x)[0]
    assert best.text == "cat sit" and best.word_frames == [(0, 5), (6, 11)]
    (strict,) = _decoder().decode(x)[0]  # the default: words end at the delimiter
    assert strict.text == "KAETSIHT" and strict.score < -1e3  # out of the lexicon: prohibitive
    # "cats" + "it" is no parse ("it" is no word): "cat sit" wins; the longest word is no rule
    assert _decoder(implicit_boundaries=True).decode(peaky(["K", "AE", "T", "S"]))[0][0].text == "cats"


def test_homophones_are_each_candidates_ranked_by_kenlm(kenlm):
    w = {"kenlm": 1.0}
    dec = _decoder(scorers={"kenlm": kenlm}, weights=w, nbest=4)
    hyps = dec.decode(peaky(["DH", "EH", "R", "<wb>", "K", "AE", "T"]))[0]
    assert [h.text for h in hyps[:2]] == ["their cat", "there cat"]
    assert hyps[0].scores["kenlm"] > hyps[1].scores["kenlm"] and hyps[0].scores["ctc"] == hyps[1].scores["ctc"]
    assert hyps[0].scores["kenlm"] == pytest.approx(kenlm.score_sentences(["their cat"])[0])
    implicit = _decoder(scorers={"kenlm": kenlm}, weights=w, nbest=4, implicit_boundaries=True)
    hyps = implicit.decode(peaky(["S", "IH", "T", "DH", "EH", "R"]))[0]  # no <wb>; and at the utterance's end
    assert [h.text for h in hyps[:2]] == ["sit there", "sit their"]
    # batched == one at a time
    xs = [peaky(["DH", "EH", "R", "<wb>", "K", "AE", "T"]), peaky(["DH", "AH", "K", "AE", "T", "IH", "Z", "DH", "EH", "R"])]
    T = max(x.shape[1] for x in xs)
    batch = np.stack([np.pad(x[0], ((0, T - x.shape[1]), (0, 0)), constant_values=np.log(1 / len(LABELS))) for x in xs])
    together = implicit.decode(batch, np.array([x.shape[1] for x in xs]))
    alone = [implicit.decode(x)[0] for x in xs]
    assert [[h.text for h in hs] for hs in together] == [[h.text for h in hs] for hs in alone]
    assert together[1][0].text == "the cat is there"


def test_the_lexicon_may_be_a_path_and_must_fit_the_labels(tmp_path):
    path = tmp_path / "lexicon.txt"
    write_lexicon(path, PRONS)
    dec = build_ctc_decoder(LABELS, lexicon=str(path))
    assert isinstance(dec.lexicon, Lexicon) and dec.lexicon.source == str(path)
    assert dec.decode(peaky(["K", "AE", "T"]))[0][0].text == "cat"
    with pytest.raises(LmplugError, match="expected a lexicon over the decoder's 14 labels .* found one over 13"):
        build_ctc_decoder(LABELS + ["NG"], lexicon=build_lexicon(PRONS, LABELS))


@pytest.mark.parametrize("kw, message", [
    ({"lexicon": True, "scorers": {"z": ZeroScorer()}, "weights": {"z": 1.0}},
     "lexicon=True spells the word scorer's vocabulary in characters: expected character labels, found token labels"),
    ({"search": "torch"}, "lexicon over tokens needs search='numpy'"),
    ({"lookahead": ["k"], "scorers": {"k": ZeroScorer()}, "weights": {"k": 1.0}},
     "expected no lookahead with a pronunciation lexicon"),
    ({"lexicon": 3}, "expected lexicon True, False or a lmplug.ctc.lexicon.Lexicon, found int"),
])
def test_unsupported_combinations_say_so(kw, message):
    with pytest.raises(LmplugError, match=message):
        _decoder(**kw)


def test_token_labels_without_a_lexicon_decode_tokens():
    (best,) = build_ctc_decoder(LABELS, beam_size=4).decode(peaky(["K", "AE", "T", "<wb>", "S", "IH", "T"]))[0]
    assert best.text == "KAET SIHT" and best.word_frames == [(0, 5), (8, 13)]


def test_a_pronunciation_lexicon_over_character_labels():
    labels = ["", " ", "a", "c", "t", "s"]
    lex = build_lexicon({"cat": [list("cat")], "cats": [list("cats")], "act": [list("act")]}, labels)
    dec = build_ctc_decoder(labels, beam_size=8, lexicon=lex)
    (best,) = dec.decode(peaky(list("cat") + [" "] + list("act"), labels))[0]
    assert best.text == "cat act"


def test_cli_decode_with_a_lexicon_file(tmp_path):
    from lmplug.cli.main import main

    (tmp_path / "labels.json").write_text(json.dumps(LABELS))
    np.save(tmp_path / "u0.npy", peaky(["K", "AE", "T", "<wb>", "S", "IH", "T"])[0])
    np.save(tmp_path / "u1.npy", peaky(["K", "AE", "T", "S", "IH", "T"])[0])  # no word boundary
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps({"id": f"u{i}", "emissions": f"u{i}.npy"}) + "\n"
                                                for i in range(2)))
    write_lexicon(tmp_path / "lexicon.txt", PRONS)
    out = tmp_path / "hyps.jsonl"

    def decode(lexicon: str, *extra: str) -> int:
        return main(["decode", "--emissions", str(tmp_path / "dev.jsonl"), "--labels", str(tmp_path / "labels.json"),
                     "--lexicon", lexicon, "--beam-size", "4", "--quiet", "--out", str(out), *extra])

    assert decode(str(tmp_path / "lexicon.txt")) == 0
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == ["cat sit", "KAETSIHT"]
    assert decode(str(tmp_path / "lexicon.txt"), "--implicit-boundaries") == 0
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == ["cat sit", "cat sit"]
    (tmp_path / "bad.txt").write_text("dog\tD AO G\n")
    assert decode(str(tmp_path / "bad.txt")) == 2
