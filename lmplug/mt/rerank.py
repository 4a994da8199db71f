"""n-best reranking: named, cached features and a log-linear reranker with named weights.

A feature maps (source, hypothesis) pairs to numbers and carries a signature. The built-in ones:

==========  ===============================================================================
``lm``      Transformer LM ``log P(hypothesis)`` (natural log, incl. </s>), ``TransformerScorer``
``kenlm``   KenLM n-gram ``log P(hypothesis)`` (natural log, incl. </s>), ``KenLMScorer``
``channel`` ``log P(source | hypothesis)`` by forced decoding with a reverse translation model
            (noisy-channel reranking, Yee et al. 2019)
``words``   hypothesis length in words
``len_ratio`` hypothesis words / source words
``X_norm``  a model feature per word: ``lm`` and ``kenlm`` / (hypothesis words + 1), ``channel``
            / (source words + 1) (:class:`PerWord`; length-normalized scores as in Yee et al.)
==========  ===============================================================================

The LM features are computed by the same scorer objects CTC fusion uses (:func:`scorer_feature`),
plus whatever the n-best file already carries (the producing system's scores). The reranker
picks, per sentence, the hypothesis with the largest ``sum(weights[f] * scores[f])``; a weight
that names a feature the lists lack is an error, never silently ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from lmplug.errors import LmplugError, expect_each_once
from lmplug.features import weighted_total
from lmplug.mt.nbest import NBest, NBestEntry, feature_names


@dataclass(frozen=True)
class Feature:
    """A named feature: ``compute(sources, hypotheses)`` -> one value per pair."""

    name: str
    signature: str  # what produced the values (model, normalization, version); part of the cache key
    compute: Callable[[Sequence[str], Sequence[str]], list[float]]


def _file_stamp(path: str | os.PathLike) -> str:
    """Size and mtime of a model's weights, so a retrained model never hits a stale cache."""
    p = Path(path)
    target = next((c for c in (p / "model.safetensors", p / "checkpoint" / "model.safetensors", p) if c.is_file()), p)
    st = target.stat()
    return f"{st.st_size}-{st.st_mtime_ns}"


def _normalizer(mode: str | None) -> Callable[[str], str]:
    if not mode or mode == "none":
        return lambda s: s
    from lmplug.corpus import normalize

    normalize("", mode)  # validates the mode
    return lambda s: normalize(s, mode)


def _unique_map(texts: Sequence[str], fn: Callable[[list[str]], list[float]]) -> list[float]:
    """Apply ``fn`` to the distinct texts only, then spread the values back."""
    uniq = list(dict.fromkeys(texts))
    values = dict(zip(uniq, fn(uniq)))
    return [values[t] for t in texts]


def scorer_feature(scorer, signature: str, normalization: str | None = None, **score_kwargs) -> Feature:
    """A language model's ``log P(hypothesis)`` as a feature, through the same
    :class:`~lmplug.scorers.base.Scorer` object CTC fusion uses (``scorer.score_sentences``:
    natural log, ``<s>`` context, ``</s>`` included), each distinct hypothesis scored once.

    Args:
        signature: what the values depend on besides the hypotheses (part of the cache key).
        normalization: ``lower`` when the LM was trained on ``lmplug.corpus.normalize(.., "lower")``
            text (hypotheses are normalized the same way before scoring); ``None`` to score as is.
        score_kwargs: passed on to ``scorer.score_sentences``.
    """
    norm = _normalizer(normalization)

    def compute(sources: Sequence[str], hyps: Sequence[str]) -> list[float]:
        return _unique_map([norm(h) for h in hyps], lambda u: scorer.score_sentences(u, **score_kwargs).tolist())

    return Feature(scorer.name, f"{signature}|norm:{normalization or 'none'}", compute)


def lm_feature(lm, name: str = "lm", normalization: str | None = None, batch_tokens: int = 16384) -> Feature:
    """Transformer LM log-prob of each hypothesis (``lm`` is a ``LanguageModel``), by
    :class:`~lmplug.scorers.transformer.TransformerScorer` (long hypotheses: the rule of
    :mod:`lmplug.scoring`)."""
    from lmplug.scorers.transformer import TransformerScorer

    return scorer_feature(TransformerScorer(lm, name=name), f"{lm.signature()}|stamp:{_file_stamp(lm.path)}",
                          normalization, batch_tokens=batch_tokens, progress=True)


def kenlm_feature(path: str | os.PathLike, name: str = "kenlm", normalization: str | None = None) -> Feature:
    """KenLM log-prob (natural log, with <s> and </s>) of each hypothesis, by
    :class:`~lmplug.scorers.kenlm.KenLMScorer` with ``unk_offset=0`` (an OOV word gets KenLM's
    plain ``<unk>`` probability, as in ``lmplug ppl``; the scorer's docstring gives the rule)."""
    from lmplug.scorers.kenlm import KenLMScorer

    sc = KenLMScorer(path, unk_offset=0.0, name=name)
    return scorer_feature(sc, f"lm:kenlm|order:{sc.order}|path:{path}|stamp:{_file_stamp(path)}", normalization)


def channel_feature(translator, name: str = "channel", batch_tokens: int = 8192) -> Feature:
    """``log P(source | hypothesis)`` from a reverse-direction ``Translator`` (forced decoding)."""

    def compute(sources: Sequence[str], hyps: Sequence[str]) -> list[float]:
        pairs = list(zip(hyps, sources))  # the channel model translates hypothesis -> source
        return _unique_map([json.dumps(p) for p in pairs],
                           lambda u: translator.score([json.loads(x)[0] for x in u], [json.loads(x)[1] for x in u],
                                                      batch_tokens=batch_tokens))

    sig = f"channel:{translator.signature()}|stamp:{_file_stamp(translator.path)}"
    return Feature(name, sig, compute)


@dataclass(frozen=True)
class PerWord:
    """A derived feature: ``scores[base] / (words + 1)`` of the hypothesis (``of="hyp"``) or of
    the source (``of="src"``); computed from the base feature, which must come before it."""

    base: str
    of: str = "hyp"

    @property
    def name(self) -> str:
        return f"{self.base}_norm"

    @property
    def signature(self) -> str:
        return f"{self.base}/({self.of}_words+1)"


def length_features() -> list[Feature]:
    """``words`` (hypothesis words) and ``len_ratio`` (hypothesis words / source words)."""
    return [
        Feature("words", "words:whitespace", lambda src, hyp: [float(len(h.split())) for h in hyp]),
        Feature("len_ratio", "len_ratio:whitespace",
                lambda src, hyp: [len(h.split()) / max(1, len(s.split())) for s, h in zip(src, hyp)]),
    ]


def build_features(lm: str | None = None, kenlm: str | None = None, channel: str | None = None,
                   lengths: bool = True, lm_normalization: str | None = None, device: str = "auto"
                   ) -> list[Feature | PerWord]:
    """The built-in features from model paths (each one optional), each model feature followed by
    its per-word variant."""
    from lmplug.train import pick_device

    feats: list[Feature | PerWord] = []
    dev = pick_device(device)
    if lm:
        from lmplug.checkpoint import load_lm

        feats += [lm_feature(load_lm(lm, device=dev), normalization=lm_normalization), PerWord("lm")]
    if kenlm:
        feats += [kenlm_feature(kenlm, normalization=lm_normalization), PerWord("kenlm")]
    if channel:
        from lmplug.mt.nmt import load_translator

        feats += [channel_feature(load_translator(channel, device=dev)), PerWord("channel", of="src")]
    if lengths:
        feats.extend(length_features())
    return feats


def _read_cache(path: Path, signature: str, n: int) -> list[float] | None:
    """The cached values of one feature, or None to compute them (again).

    The file name already keys the signature and the exact pairs, and it is written atomically,
    so a file that does not parse, names another signature or holds other than ``n`` numbers was
    damaged outside lmplug: like a missing one it is recomputed (and rewritten), with a note
    naming it, rather than trusted or made fatal, since the values can always be derived again.
    """
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return _recompute(path, f"expected JSON, found {type(e).__name__}: {e}")
    values = obj.get("values") if isinstance(obj, dict) and obj.get("signature") == signature else None
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return _recompute(path, f"expected {{'signature': {signature!r}, 'values': [numbers]}}, found {str(obj)[:80]}")
    if len(values) != n:
        return _recompute(path, f"expected {n} values (one per hypothesis), found {len(values)}")
    return [float(v) for v in values]


def _recompute(path: Path, problem: str) -> None:
    """Say (to stderr) why the cache file at ``path`` is not used; None: compute the values."""
    print(f"[features] {path}: unusable cache, computed again: {problem}", file=sys.stderr, flush=True)
    return None


def add_features(nbest: NBest, sources: Sequence[str], features: Sequence[Feature | PerWord],
                 cache_dir: str | os.PathLike | None = None, progress: bool = True) -> dict[str, str]:
    """Compute each feature for every hypothesis and store it in ``entry.scores[name]`` (in place).

    Values are cached in ``cache_dir`` under a key made of the feature's signature and the exact
    (source, hypothesis) pairs, so re-running with the same models and lists costs nothing.

    Returns:
        {feature name: signature}.
    """
    if len(sources) != len(nbest):
        raise LmplugError(f"expected one source sentence per n-best id ({len(nbest)}), found {len(sources)} sources")
    names = [f.name for f in features]
    expect_each_once(names)
    flat = [e for hyps in nbest for e in hyps]
    srcs = [sources[e.id] for e in flat]
    hyps = [e.text for e in flat]
    for f in features:
        if isinstance(f, PerWord):
            if f.base not in names[: names.index(f.name)]:
                raise LmplugError(f"per-word feature '{f.name}' needs '{f.base}' computed before it, found {names}")
            for e, src in zip(flat, srcs):
                e.scores[f.name] = e.scores[f.base] / (len((e.text if f.of == "hyp" else src).split()) + 1)
            continue
        values = None
        path = None
        if cache_dir is not None:
            key = hashlib.sha1(json.dumps([f.signature, srcs, hyps]).encode("utf-8")).hexdigest()[:20]
            path = Path(cache_dir) / f"{f.name}.{key}.json"
            values = _read_cache(path, f.signature, len(flat))
        if values is None:
            if progress:
                print(f"[features] {f.name}: {len(flat)} hypotheses ({f.signature})", file=sys.stderr, flush=True)
            values = [float(v) for v in f.compute(srcs, hyps)]
            if len(values) != len(flat):
                raise LmplugError(f"feature '{f.name}' returned {len(values)} values, expected {len(flat)}")
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text(json.dumps({"signature": f.signature, "values": values}))
                tmp.replace(path)
        for e, v in zip(flat, values):
            e.scores[f.name] = v
    return {f.name: f.signature for f in features}


def check_weights(nbest: NBest, weights: Mapping[str, float]) -> list[str]:
    """The n-best lists' feature names; raises if ``weights`` names a feature they lack."""
    if not weights:
        raise LmplugError("expected at least one feature weight, found none")
    names = feature_names(nbest)
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise LmplugError(f"weights name unknown features {unknown}; the n-best lists carry {names}")
    return names


def linear_score(entry: NBestEntry, weights: Mapping[str, float]) -> float:
    """The reranker's score of one hypothesis: :func:`lmplug.features.weighted_total`."""
    return weighted_total(entry.scores, weights)


def rerank_translations(nbest: NBest, weights: Mapping[str, float]) -> list[NBestEntry]:
    """Best hypothesis per sentence under ``weights`` (ties: the earlier hypothesis in the list)."""
    check_weights(nbest, weights)
    return [max(hyps, key=lambda e: linear_score(e, weights)) for hyps in nbest]
