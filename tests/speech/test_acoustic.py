import json

import numpy as np
import pytest
import torch

pytest.importorskip("torchaudio")

from lmplug.speech.acoustic import (CHAR_LABELS, AMConfig, ConformerCTC, encode_text, greedy_transcript, load_am,  # noqa: E402
                             make_batches, save_am)
from lmplug.errors import LmplugError  # noqa: E402


def test_shapes_and_lengths():
    torch.manual_seed(0)
    m = ConformerCTC(AMConfig(d_model=32, n_layers=1, n_heads=2, ffn_dim=64)).eval()
    x = torch.randn(2, 101, 80)
    logp, out_len = m(x, torch.tensor([101, 57]))
    assert logp.shape == (2, 26, len(CHAR_LABELS)) and out_len.tolist() == [26, 15]
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2, 26))


@pytest.mark.parametrize(
    "frames, expected",
    [([0, 0, 3, 3, 0, 1, 4, 4, 0, 5], "a bc"), ([0, 0, 0], ""), ([3, 0, 3, 1, 1, 4], "aa b")],
)
def test_greedy_transcript(frames, expected):
    logp = np.full((len(frames), len(CHAR_LABELS)), -10.0)
    logp[np.arange(len(frames)), frames] = 0.0
    assert greedy_transcript(logp, CHAR_LABELS) == expected


def test_encode_text_rejects_unknown_characters():
    assert encode_text("ab c", CHAR_LABELS) == [3, 4, 1, 5]
    with pytest.raises(LmplugError, match=r"outside the label set: \['1', 'É'\]"):
        encode_text("abÉ1", CHAR_LABELS)


def test_checkpoint_roundtrip(tmp_path):
    m = ConformerCTC(AMConfig(d_model=32, n_layers=1, n_heads=2, ffn_dim=64)).eval()
    save_am(tmp_path / "am", m)
    assert load_am(tmp_path / "am").cmvn is None  # none given: none saved (older checkpoints: the same)
    m.cmvn = (np.linspace(-1, 1, 80).astype(np.float32), np.full(80, 2.0, dtype=np.float32))
    save_am(tmp_path / "am", m)
    m2 = load_am(tmp_path / "am")
    np.testing.assert_array_equal(m2.cmvn[0], m.cmvn[0])
    np.testing.assert_array_equal(m2.cmvn[1], m.cmvn[1])
    x = torch.randn(1, 40, 80)
    torch.testing.assert_close(m(x, torch.tensor([40]))[0], m2(x, torch.tensor([40]))[0])
    (tmp_path / "am" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(LmplugError, match="cannot load"):
        load_am(tmp_path / "am")
    cfg = tmp_path / "am" / "config.json"
    meta = json.loads(cfg.read_text())
    for bad, message in [({**meta["model"], "foo": 1}, r"unknown AMConfig fields \['foo'\]"),
                         ([1], "expected the model config as a JSON object, found list")]:
        cfg.write_text(json.dumps({**meta, "model": bad}))
        with pytest.raises(LmplugError, match="config.json: " + message):
            load_am(tmp_path / "am")


def test_make_batches_respects_budget():
    class FS:
        lengths = np.array([10, 50, 20, 40, 30])

    batches = make_batches(FS(), max_frames=60)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    for b in batches:
        assert len(b) * max(FS.lengths[i] for i in b) <= 60 or len(b) == 1


def test_train_am_checks_every_transcript_before_training(tmp_path):
    from lmplug.speech.acoustic import FeatureSet, train_am
    from lmplug.train import TrainConfig

    feats = np.zeros((30, 80), dtype=np.float16)
    fs = FeatureSet(feats, ["u0", "u1"], np.array([0, 15]), np.array([15, 15]), ["ok here", "caesar æ"])
    with pytest.raises(LmplugError, match=r"train utterance u1: .*\['æ'\]"):
        train_am(fs, fs, tmp_path / "am", AMConfig(d_model=32, n_layers=1, n_heads=2, ffn_dim=64),
                 TrainConfig(batch_size=1, max_steps=1), progress=False)
    assert not (tmp_path / "am").exists() or not any((tmp_path / "am").iterdir())


def test_feature_cache_is_reused_only_for_the_same_audio(tmp_path):
    import os

    import soundfile as sf

    from lmplug.speech.acoustic import extract_features
    from lmplug.speech.synthesis import Utterance

    rng = np.random.default_rng(0)
    for name, n in (("a", 8000), ("b", 12000)):
        sf.write(tmp_path / f"{name}.flac", (0.1 * rng.standard_normal(n)).astype(np.float32), 16000)
    utts = [Utterance("a", str(tmp_path / "a.flac"), "x"), Utterance("b", str(tmp_path / "b.flac"), "y")]
    first = extract_features(utts, tmp_path / "feats", progress=False)
    stamp = os.stat(tmp_path / "feats.bin").st_mtime_ns
    again = extract_features(utts, tmp_path / "feats", progress=False)
    assert list(again.lengths) == list(first.lengths) and os.stat(tmp_path / "feats.bin").st_mtime_ns == stamp
    # the same ids over other audio (a manifest pointing elsewhere): computed again, not the stale cache
    swapped = [Utterance("a", str(tmp_path / "b.flac"), "x"), Utterance("b", str(tmp_path / "a.flac"), "y")]
    other = extract_features(swapped, tmp_path / "feats", progress=False)
    assert list(other.lengths) == list(first.lengths)[::-1]
    # a truncated .bin or a corrupt .json: computed again
    (tmp_path / "feats.bin").write_bytes((tmp_path / "feats.bin").read_bytes()[:100])
    assert list(extract_features(swapped, tmp_path / "feats", progress=False).lengths) == list(other.lengths)
    (tmp_path / "feats.json").write_text("{")
    assert list(extract_features(utts, tmp_path / "feats", progress=False).lengths) == list(first.lengths)
    # with given statistics (an acoustic model's), an utterance's features do not depend on its manifest
    alone = extract_features(utts[:1], tmp_path / "alone", progress=False, stats=first.stats)
    both = extract_features(utts, tmp_path / "both", progress=False, stats=first.stats)
    np.testing.assert_array_equal(alone.get(0), both.get(0))
    own = extract_features(utts[:1], tmp_path / "own", progress=False)
    assert not np.array_equal(own.get(0), both.get(0))  # its own statistics: other features
    # the cache tells statistics apart
    again = extract_features(utts[:1], tmp_path / "own", progress=False, stats=first.stats)
    np.testing.assert_array_equal(again.get(0), alone.get(0))
    with pytest.raises(LmplugError, match="expected normalization statistics"):
        extract_features(utts, tmp_path / "bad", progress=False, stats=(first.mean[:3], first.std[:3]))
    from lmplug.speech.acoustic import train_am
    from lmplug.train import TrainConfig

    with pytest.raises(LmplugError, match="expected the dev features normalized with the training set's statistics"):
        train_am(first, own, tmp_path / "am", AMConfig(d_model=32, n_layers=1, n_heads=2, ffn_dim=64),
                 TrainConfig(batch_size=1, max_steps=1), progress=False)
