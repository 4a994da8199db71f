import math
from pathlib import Path

import pytest

from lmplug.errors import LmplugError
from lmplug.ngram import arpa_unigrams, find_kenlm_binary, load_kenlm, score_sentences_ngram, train_ngram
from lmplug.scoring import perplexity


def _have_lmplz() -> bool:
    try:
        find_kenlm_binary("lmplz")
        return True
    except LmplugError:
        return False


needs_lmplz = pytest.mark.skipif(not _have_lmplz(), reason="KenLM lmplz not built (run tools/setup.sh)")
pytest.importorskip("kenlm")


@needs_lmplz
def test_train_and_score(tmp_path, corpus):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(corpus) + "\n")
    paths = train_ngram(text, tmp_path / "lm", order=3)
    model = load_kenlm(paths["binary"])
    seen = score_sentences_ngram(model, ["and god saw the light that it was good"])[0]
    odd = score_sentences_ngram(model, ["good was it that light the saw god and"])[0]
    assert seen.logprob > odd.logprob and seen.n_tokens == 10 and seen.n_oov == 0
    assert math.isclose(seen.logprob, model.score("and god saw the light that it was good") * math.log(10))
    oov = score_sentences_ngram(model, ["zebra"])[0]
    assert oov.n_oov == 1
    words = arpa_unigrams(paths["arpa"])
    assert "god" in words and "<s>" not in words
    assert perplexity([seen])["ppl_word"] == pytest.approx(math.exp(-seen.logprob / 10))


@needs_lmplz
def test_bad_inputs(tmp_path):
    with pytest.raises(LmplugError, match="missing or empty"):
        train_ngram(tmp_path / "none.txt", tmp_path / "x")
    (tmp_path / "t.txt").write_text("a b\n")
    with pytest.raises(LmplugError, match="between 2 .* and 6"):
        train_ngram(tmp_path / "t.txt", tmp_path / "x", order=9)
    with pytest.raises(LmplugError, match="between 2 .* and 6"):
        train_ngram(tmp_path / "t.txt", tmp_path / "x", order=1)
    with pytest.raises(LmplugError, match="expected --prune counts >= 0"):
        train_ngram(tmp_path / "t.txt", tmp_path / "x", order=3, prune=[0, -1])
    (tmp_path / "bad.txt").write_bytes(b"good line\n\xff\xfe bad\n")
    with pytest.raises(LmplugError, match=r"bad.txt:2: expected UTF-8"):
        train_ngram(tmp_path / "bad.txt", tmp_path / "x", order=3)
    (tmp_path / "junk.arpa").write_text("not an arpa\n")
    with pytest.raises(LmplugError, match="not a readable ARPA"):
        load_kenlm(tmp_path / "junk.arpa")


def test_a_failed_build_leaves_earlier_models_as_they_were(tmp_path, corpus, monkeypatch):
    text = tmp_path / "train.txt"
    text.write_text("\n".join(corpus) + "\n")
    paths = train_ngram(text, tmp_path / "lm", order=3)
    before = {k: Path(v).read_bytes() for k, v in paths.items()}
    import lmplug.ngram as ngram

    real = ngram.find_kenlm_binary
    monkeypatch.setattr(ngram, "find_kenlm_binary", lambda name: "/bin/false" if name == "build_binary" else real(name))
    with pytest.raises(LmplugError, match="build_binary failed .*left as they were"):
        train_ngram(text, tmp_path / "lm", order=2)
    assert {k: Path(v).read_bytes() for k, v in paths.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lm.arpa", "lm.bin", "train.txt"]
