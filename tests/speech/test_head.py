"""A CTC head on a front-end's states: stacked frames, the feature cache, the front-end's key kept
with the checkpoint and checked when features are made for it."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("torchaudio")

from lmplug.errors import LmplugError  # noqa: E402
from lmplug.speech.acoustic import (CHAR_LABELS, AMConfig, ConformerCTC, extract_features, load_am,  # noqa: E402
                                    save_am, train_am)
from lmplug.speech.cache import FeatureCache  # noqa: E402
from lmplug.speech.synthesis import Utterance  # noqa: E402


class SpectrumFrontend:
    """A small deterministic front-end (a real computation, not a pretrained model): 16 log band
    energies per 20 ms of audio, the interface of lmplug.speech.frontends."""

    frame_rate = 50.0
    dim = 16

    def __init__(self, version: str = "1") -> None:
        self.name = "spectrum"
        self.key = f"spectrum|v{version}"
        self.calls = 0

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        self.calls += 1
        n = len(audio) // 320 + 1
        frames = np.pad(audio, (0, n * 320 - len(audio))).reshape(n, 320)
        spec = np.abs(np.fft.rfft(frames, axis=1))[:, :160].reshape(n, 16, 10).sum(-1)
        return np.log(spec + 1e-3).astype(np.float32)


def _config(**kw):
    return AMConfig(d_model=32, n_layers=1, n_heads=2, ffn_dim=64, n_mels=16, frontend="spectrum", subsample=2, **kw)


def test_stacked_frames_shapes_and_lengths():
    m = ConformerCTC(_config()).eval()
    logp, out_len = m(torch.randn(2, 11, 16), torch.tensor([11, 6]))
    assert logp.shape == (2, 6, len(CHAR_LABELS)) and out_len.tolist() == [6, 3]
    assert m.frame_seconds == pytest.approx(0.04)
    assert ConformerCTC(AMConfig(d_model=32, n_layers=1, n_heads=2, ffn_dim=64)).frame_seconds == pytest.approx(0.04)
    with pytest.raises(LmplugError, match="expected subsample 1, 2 or 4, found 3"):
        AMConfig(subsample=3)


@pytest.fixture
def recordings(tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(0)
    utts = []
    for i, n in enumerate((8000, 12000, 9600)):
        path = tmp_path / f"u{i}.flac"
        sf.write(path, (0.1 * rng.standard_normal(n)).astype(np.float32), 16000)
        utts.append(Utterance(f"u{i}", str(path), "a b"))
    return utts


def test_front_end_features_go_through_the_cache(tmp_path, recordings):
    fe, cache = SpectrumFrontend(), FeatureCache(tmp_path / "cache")
    fs = extract_features(recordings, tmp_path / "feats", frontend=fe, cache=cache, progress=False)
    assert fs.feats.shape[1] == 16 and fs.frontend == fe.key and list(fs.lengths) == [26, 38, 31]
    assert fe.calls == 3
    # another manifest of the same audio: read from the cache, not computed again
    again = extract_features(recordings[:2], tmp_path / "other", frontend=fe, cache=cache, progress=False, stats=fs.stats)
    assert fe.calls == 3 and cache.hits == 2
    np.testing.assert_array_equal(again.get(1), fs.get(1))
    # the same audio under another front-end model: new features, beside the old
    fe2 = SpectrumFrontend("2")
    extract_features(recordings, tmp_path / "feats", frontend=fe2, cache=cache, progress=False)
    assert fe2.calls == 3 and len(list((tmp_path / "cache").iterdir())) == 2


def test_head_checkpoint_keeps_its_front_end(tmp_path, recordings):
    from lmplug.train import TrainConfig

    fe, cache = SpectrumFrontend(), FeatureCache(tmp_path / "cache")
    train = extract_features(recordings, tmp_path / "train", frontend=fe, cache=cache, progress=False)
    dev = extract_features(recordings[:1], tmp_path / "dev", frontend=fe, cache=cache, progress=False, stats=train.stats)
    train_am(train, dev, tmp_path / "am", _config(), TrainConfig(batch_size=1, max_steps=2, eval_every=2),
             max_frames=200, progress=False)
    am = load_am(tmp_path / "am")
    assert am.frontend_key == fe.key and am.config.frontend == "spectrum" and am.config.subsample == 2
    # fbank features for a head: refused before training
    fb = extract_features(recordings, tmp_path / "fbank", progress=False)
    with pytest.raises(LmplugError, match="expected train features of spectrum"):
        train_am(fb, fb, tmp_path / "am2", _config(), TrainConfig(batch_size=1, max_steps=1), progress=False)
    # a head's checkpoint without the key of its front-end: a clear error
    cfg = tmp_path / "am" / "checkpoint" / "config.json"
    cfg = cfg if cfg.is_file() else tmp_path / "am" / "config.json"
    meta = json.loads(cfg.read_text())
    del meta["frontend_key"]
    cfg.write_text(json.dumps(meta))
    with pytest.raises(LmplugError, match="expected 'frontend_key'"):
        load_am(cfg.parent)


def test_emissions_refuse_features_of_another_front_end_model(tmp_path, recordings, monkeypatch):
    import lmplug.cli.speech as cli

    m = ConformerCTC(_config())
    m.frontend_key = "spectrum|v1"
    save_am(tmp_path / "am", m)
    am = load_am(tmp_path / "am")
    monkeypatch.setattr(cli, "_frontend_of", lambda name, cache_dir: (SpectrumFrontend("2"), FeatureCache(cache_dir)))
    with pytest.raises(LmplugError, match=r"trained on \(spectrum\|v1\), found another installed \(spectrum\|v2\)"):
        cli.am_features(am, recordings, tmp_path / "feats", str(tmp_path / "cache"))
    monkeypatch.setattr(cli, "_frontend_of", lambda name, cache_dir: (SpectrumFrontend("1"), FeatureCache(cache_dir)))
    fs = cli.am_features(am, recordings, tmp_path / "feats", str(tmp_path / "cache"), progress=False)
    assert fs.frontend == "spectrum|v1"
