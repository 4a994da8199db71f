"""KenLM n-gram baseline: build with lmplz/build_binary, load, score sentences.

lmplz and build_binary are not packaged in Debian or on PyPI; ``tools/setup.sh`` builds them
from the kenlm sdist into the virtual environment's ``bin/``, which is where we look first.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from lmplug.errors import LmplugError
from lmplug.scoring import SentenceScore

LN10 = math.log(10.0)  # KenLM returns log10 probabilities
INSTALL_HINT = "pip install kenlm==0.3.0 (or `pip install 'lmplug[ngram]'`; tools/setup.sh builds lmplz too)"


def find_kenlm_binary(name: str) -> str:
    """Path of ``lmplz`` or ``build_binary``: next to this Python first, then on PATH."""
    cand = Path(sys.executable).parent / name
    if cand.is_file():
        return str(cand)
    found = shutil.which(name)
    if found:
        return found
    raise LmplugError(f"KenLM's {name} not found next to {sys.executable} or on PATH; run tools/setup.sh to build it")


def train_ngram(
    text_path: str | Path,
    out_prefix: str | Path,
    order: int = 5,
    memory: str = "20%",
    prune: Sequence[int] = (),
    binary: bool = True,
) -> dict[str, str]:
    """Build ``<out_prefix>.arpa`` (and ``.bin``) with lmplz on one-sentence-a-line text.

    Discount fallback is on, so tiny corpora (tests) build too. Returns the written paths. Both
    files are built beside their targets and replace them only once both are built: a failed
    run leaves earlier models as they were.
    """
    text = Path(text_path)
    if not text.is_file() or text.stat().st_size == 0:
        raise LmplugError(f"n-gram training text missing or empty: {text}")
    if not 2 <= order <= 6:
        raise LmplugError(f"n-gram order must be between 2 (build_binary needs bigrams) and 6 (KENLM_MAX_ORDER), "
                          f"found {order}")
    if any(p < 0 for p in prune):
        raise LmplugError(f"expected --prune counts >= 0, found {list(prune)}")
    with open(text, "rb") as f:  # lmplz would take any bytes as words
        for i, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise LmplugError(f"{text}:{i}: expected UTF-8 text, found invalid bytes at column {e.start + 1}") from None
    out = Path(out_prefix)
    out.parent.mkdir(parents=True, exist_ok=True)
    arpa = out.with_name(out.name + ".arpa")
    cmd = [find_kenlm_binary("lmplz"), "-o", str(order), "-S", memory, "-T", str(out.parent), "--discount_fallback"]
    if prune:
        cmd += ["--prune", *map(str, prune)]
    tmp = arpa.with_name(arpa.name + ".tmp")
    bin_path = out.with_name(out.name + ".bin")
    tmp_bin = bin_path.with_name(bin_path.name + ".tmp")
    try:
        with open(text, "rb") as fin, open(tmp, "wb") as fout:
            proc = subprocess.run(cmd, stdin=fin, stdout=fout, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise LmplugError(f"lmplz failed (exit {proc.returncode}): {proc.stderr.decode(errors='replace')[-400:]}")
        if binary:
            proc = subprocess.run([find_kenlm_binary("build_binary"), str(tmp), str(tmp_bin)], capture_output=True)
            if proc.returncode != 0:
                raise LmplugError(f"build_binary failed (earlier {arpa.name}/{bin_path.name} left as they were): "
                                  f"{proc.stderr.decode(errors='replace')[-400:]}")
            tmp_bin.replace(bin_path)
        tmp.replace(arpa)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_bin.unlink(missing_ok=True)
    paths = {"arpa": str(arpa)}
    if binary:
        paths["binary"] = str(bin_path)
    return paths


def import_kenlm():
    """The ``kenlm`` module, or an error naming the install command."""
    try:
        import kenlm
    except ImportError:
        raise LmplugError(f"the kenlm module is needed for n-gram models: expected it installed, found none; "
                          f"run {INSTALL_HINT}") from None
    return kenlm


def load_kenlm(path: str | Path):
    """A ``kenlm.Model`` from an ARPA or binary file, with actionable errors."""
    kenlm = import_kenlm()
    p = Path(path)
    if not p.is_file():
        raise LmplugError(f"KenLM model not found: expected an .arpa or binary file at {p}")
    try:
        return kenlm.Model(str(p))
    except (OSError, RuntimeError) as e:
        raise LmplugError(f"{p}: not a readable ARPA or KenLM binary ({e})") from None


def score_sentences_ngram(model, sentences: Sequence[str]) -> list[SentenceScore]:
    """Natural-log sentence probabilities with <s> and </s>, as ``lmplug ppl`` reports them.

    An OOV word gets KenLM's own ``<unk>`` probability and nothing more: this is
    :class:`~lmplug.scorers.kenlm.KenLMScorer` with ``unk_offset=0`` (that scorer's
    ``score_sentences`` is this function plus its offset; see its docstring for the OOV rule).
    """
    out = []
    for s in sentences:
        words = s.split()
        oov = sum(1 for w in words if w not in model)
        out.append(SentenceScore(model.score(s, bos=True, eos=True) * LN10, len(words) + 1, len(words), oov))
    return out


def arpa_unigrams(path: str | Path) -> list[str] | None:
    """The words of an ARPA file's 1-gram section (no ``<s>``, ``</s>``, ``<unk>``), in file order.

    ``path`` may be the ARPA file or a KenLM binary with its ARPA beside it (``ngram5.bin`` +
    ``ngram5.arpa``); returns None when a binary has no ARPA beside it. pyctcdecode and the
    decoders' out-of-vocabulary penalties want this list.
    """
    p = Path(path)
    arpa = p if p.suffix == ".arpa" else p.with_suffix(".arpa")
    if not arpa.is_file():
        return None
    words, inside = [], False
    with open(arpa, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif inside and (not line or line.startswith("\\")):
                break
            elif inside:
                parts = line.split("\t")
                if len(parts) >= 2 and parts[1] not in ("<s>", "</s>", "<unk>"):
                    words.append(parts[1])
    return words
