"""lmplug.speech.lexicon: pronunciations from hama's G2P over its phone model's labels, and
``lmplug make-lexicon``."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from lmplug.ctc.lexicon import read_lexicon
from lmplug.errors import LmplugError
from lmplug.speech.lexicon import phone_lexicon, spelling_tokens

TOKENS = ["<pad>", "<sos>", "<eos>", "<unk>", " ", "a", "aɪ", "k", "t", "ð", "ɛ", "ɹ", "<wb>", "<blank>"]


class FakeG2P:
    """``predict(word).alignments[i].phoneme`` from a table (hama's G2P's surface)."""

    max_output_len = 4

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def predict(self, word: str):
        self.calls.append(word)
        return SimpleNamespace(alignments=[SimpleNamespace(phoneme=p) for p in self.table[word]])


def test_spelling_tokens_leave_out_specials_and_whitespace():
    assert spelling_tokens(TOKENS) == {"a", "aɪ", "k", "t", "ð", "ɛ", "ɹ"}


def test_words_outside_the_inventory_are_skipped_and_counted():
    g2p = FakeG2P({"their": ["ð", "ɛ", "ɹ"], "there": ["ð", "ɛ", "ɹ"], "kite": ["k", "aɪ", "t"],
                   "ago": ["a", " ", "k"], "x": ["<unk>"], "long": ["k", " ", "a", "k"], "": [], "zed": ["z"]})
    done = []
    words = ["their", "there", "kite", "their", "ago", "x", "long", "", "zed"]
    lex = phone_lexicon(words, TOKENS, g2p=g2p, progress=done.append)
    assert lex.pronunciations == {"their": [("ð", "ɛ", "ɹ")], "there": [("ð", "ɛ", "ɹ")], "kite": [("k", "aɪ", "t")],
                                  "ago": [("a", "k")]}  # the G2P's spaced (non-English) mode: spaces dropped
    assert lex.skipped == {"empty": [""], "truncated": ["long"], "outside": ["x", "zed"]} and lex.spaced == ["ago"]
    assert g2p.calls.count("their") == 1 and len(done) == 8  # repeats looked up once
    summary = lex.summary()
    assert (summary["words"], summary["spaced"], summary["skipped_outside"], summary["skipped_truncated"]) == (4, 1, 2, 1)
    strict = phone_lexicon(words, TOKENS, g2p=FakeG2P(g2p.table), drop_spaces=False)
    assert "ago" not in strict.pronunciations and strict.skipped["outside"] == ["ago", "x", "zed"]
    with pytest.raises(LmplugError, match="expected phone labels to spell pronunciations with, found none"):
        phone_lexicon(["a"], ["<blank>", "<wb>"], g2p=g2p)


def test_hama_g2p_spells_with_the_phone_models_labels(tmp_path):
    pytest.importorskip("hama")
    from lmplug.ctc.lexicon import write_lexicon
    from lmplug.speech.frontends import load_frontend

    tokens = load_frontend("hama").tokens
    lex = phone_lexicon(["their", "there", "cat", "ago", "m"], tokens)
    assert lex.pronunciations["their"] == lex.pronunciations["there"] == [("ð", "ɛ", "ɹ")]
    assert lex.pronunciations["cat"] == [("k", "æ", "t")]
    assert lex.pronunciations["ago"] == [("a", "ɣ", "̞", "o")] and lex.spaced == ["ago"]  # hama 1.7.0's G2P
    assert lex.skipped["truncated"] == ["m"]  # 32 symbols for "m"
    write_lexicon(tmp_path / "lexicon.txt", lex.pronunciations)
    read = read_lexicon(tmp_path / "lexicon.txt", tokens)
    assert read["there"] == (("ð", "ɛ", "ɹ"),) and read.labels.style == "tokens"


def test_make_lexicon_command(tmp_path, capsys):
    pytest.importorskip("hama")
    from lmplug.cli.main import main
    from lmplug.speech.frontends import load_frontend

    (tmp_path / "words.txt").write_text("cat\nthere\nthere\nm\n")
    out = tmp_path / "lexicon.txt"
    assert main(["make-lexicon", "--words", str(tmp_path / "words.txt"), "--frontend", "hama", "--out", str(out),
                 "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["words"], summary["lines"], summary["skipped_truncated"]) == (2, 2, 1)
    assert out.read_text(encoding="utf-8") == "cat\tk æ t\nthere\tð ɛ ɹ\n"
    assert len(read_lexicon(out, load_frontend("hama").tokens)) == 2
    assert main(["make-lexicon", "--words", str(tmp_path / "words.txt"), "--frontend", "whisper-base",
                 "--out", str(out)]) == 2
