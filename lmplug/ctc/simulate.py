"""Simulated CTC emissions drawn from reference text, for tests and benchmarks.

Until a real acoustic model provides emissions, this gives decoders something with the shape of
real CTC posteriors:

- **peaky**: each label of the reference fires on 1-2 frames, separated by runs of blank frames
  (``frames_per_label`` frames per label on average, as at a 20-40 ms frame rate); blank frames
  put almost all mass on the blank;
- **confusable**: on a label frame, with probability ``confusion`` a similar-sounding character
  (vowels with vowels, b/p, d/t, m/n, ...; any label for other vocabularies) gets a competing
  score that beats the reference half of the time, and some frames are weak, so
  the greedy path has realistic character errors that an LM can fix;
- **noisy**: Gaussian noise of ``noise`` on every logit.

The result is log-softmaxed ``(T, V)`` float32 per utterance. Greedy decoding of Bible verses at
the defaults: CER ~13%, WER ~53% (a small real Conformer-CTC measured here: CER 21%, WER 62%);
errors grow with ``confusion`` and ``noise``. Deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmplug.ctc.labels import build_labels

CONFUSABLE = ["aeiouy", "bp", "dt", "gkcq", "mn", "fv", "sz", "lr", "wv", "hj", "x"]


def char_labels(texts: Sequence[str], delimiter: str = "|") -> list[str]:
    """A wav2vec2-style label list for ``texts``: blank ``<pad>`` first, the delimiter, letters."""
    chars = sorted({c for t in texts for c in t if c != " "})
    return ["<pad>", delimiter] + chars


def _confusions(labels) -> list[np.ndarray]:
    lab = build_labels(labels)
    index = {lab.text[i]: i for i in range(lab.size) if lab.text_len[i] == 1}
    out = []
    for i in range(lab.size):
        group = next((g for g in CONFUSABLE if lab.text[i] in g and len(lab.text[i]) == 1), None)
        sims = [index[c] for c in (group or "") if c in index and index[c] != i]
        if not sims:
            sims = [j for j in range(lab.size) if j not in (i, lab.blank_id)]
        out.append(np.array(sims, dtype=np.int64))
    return out


def simulate_emissions(
    label_ids: Sequence[Sequence[int]],
    labels: Sequence[str],
    seed: int = 0,
    frames_per_label: float = 3.0,
    confusion: float = 0.2,
    noise: float = 1.0,
) -> list[np.ndarray]:
    """CTC log-probs for reference label sequences.

    Args:
        label_ids: per utterance, the reference label ids (delimiters included, no blanks).
        labels: the label list (one per emission column; must contain a blank).
        seed: random seed.
        frames_per_label: mean frames per label (>= 2 so repeated labels can be separated).
        confusion: probability that a label frame also scores a confusable label highly.
        noise: standard deviation of the logit noise.

    Returns:
        per utterance a float32 array (T, V) of log-probabilities.
    """
    lab = build_labels(labels)
    V, blank = lab.size, lab.blank_id
    conf = _confusions(labels)
    rng = np.random.default_rng(seed)
    out = []
    for ids in label_ids:
        frames: list[tuple[int, int | None]] = [(blank, None)] * int(rng.integers(1, 4))
        for j, tok in enumerate(ids):
            n_fire = 1 + int(rng.random() < 0.3)
            frames += [(int(tok), j)] * n_fire
            n_blank = max(1 if j + 1 < len(ids) and ids[j + 1] == tok else 0,
                          int(rng.poisson(max(frames_per_label - n_fire, 0.0))))
            frames += [(blank, None)] * n_blank
        frames += [(blank, None)] * int(rng.integers(1, 4))
        T = len(frames)
        x = rng.normal(0.0, noise, size=(T, V)).astype(np.float32)
        for t, (tok, j) in enumerate(frames):
            if tok == blank:
                x[t, blank] += 9.0 + rng.normal(0, 1.5)
                continue
            strength = rng.uniform(4.0, 10.0)
            x[t, tok] += strength
            x[t, blank] += rng.uniform(0.0, 3.0)  # blank competes on label frames too
            if rng.random() < confusion:
                other = int(rng.choice(conf[tok]))
                x[t, other] += strength + rng.normal(0.0, 1.5)
        x -= np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)) + x.max(1, keepdims=True)
        out.append(x.astype(np.float32))
    return out


def text_to_char_ids(text: str, labels: Sequence[str]) -> list[int]:
    """Label ids of ``text`` for character labels (spaces become the delimiter)."""
    lab = build_labels(labels)
    index = {lab.text[i]: i for i in range(lab.size) if lab.text_len[i] == 1}
    ids = []
    for w in text.split():
        if ids:
            ids.append(lab.delimiter_id)
        ids.extend(index[c] for c in w if c in index)
    return ids


def pad_batch(emissions: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack (T_i, V) arrays into (B, T_max, V) (padding: log-uniform rows) and lengths (B,)."""
    V = emissions[0].shape[1]
    lens = np.array([e.shape[0] for e in emissions], dtype=np.int64)
    out = np.full((len(emissions), int(lens.max()), V), -np.log(V), dtype=np.float32)
    for i, e in enumerate(emissions):
        out[i, : len(e)] = e
    return out, lens
