"""Translation metrics with their signatures: sacrebleu BLEU and chrF, paired bootstrap resampling.

Every number is reported with sacrebleu's signature (``nrefs:1|case:mixed|eff:no|tok:13a|...``)
and, for the paired test, its number of resamples and seed (``SACREBLEU_SEED``, default 12345).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from lmplug.errors import LmplugError
from lmplug.mt.mert import _sacrebleu


def evaluate_systems(systems: Mapping[str, Sequence[str]], references: Sequence[str], baseline: str | None = None,
                     n_bootstrap: int = 1000) -> dict:
    """Corpus BLEU and chrF of each system; with ``baseline``, sacrebleu's paired bootstrap test
    (``n_bootstrap`` resamples; 0: no test, every p-value None).

    Returns:
        {"systems": [{"name", "bleu", "chrf", "bleu_detail", "p_bleu", "p_chrf",
        "bleu_ci", ...}], "signatures": {"BLEU": ..., "chrF": ...}, "n_sentences": N}.
    """
    sb = _sacrebleu()
    from sacrebleu.metrics import BLEU, CHRF

    if not systems:
        raise LmplugError("expected at least one system to evaluate, found none")
    if not references:
        raise LmplugError("expected at least one reference, found none")
    if n_bootstrap < 0:
        raise LmplugError(f"expected n_bootstrap >= 0 resamples (0: no significance test), found {n_bootstrap!r}")
    for name, hyps in systems.items():
        if len(hyps) != len(references):
            raise LmplugError(f"system '{name}': expected {len(references)} lines (one per reference), "
                              f"found {len(hyps)}")
    if baseline is not None and baseline not in systems:
        raise LmplugError(f"baseline '{baseline}' is not among the systems {list(systems)}")
    refs = [list(references)]
    rows = []
    bleu, chrf = BLEU(), CHRF()
    for name, hyps in systems.items():
        b = bleu.corpus_score(list(hyps), refs)
        c = chrf.corpus_score(list(hyps), refs)
        rows.append({"name": name, "bleu": round(b.score, 2), "chrf": round(c.score, 2), "bleu_detail": str(b),
                     "p_bleu": None, "p_chrf": None})
    sigs = {"BLEU": str(bleu.get_signature()), "chrF": str(chrf.get_signature())}
    if baseline is not None and len(systems) > 1 and n_bootstrap > 0:
        from sacrebleu.significance import PairedTest

        named = [(baseline, list(systems[baseline]))] + [(n, list(h)) for n, h in systems.items() if n != baseline]
        test = PairedTest(named, {"BLEU": BLEU(), "chrF": CHRF()}, refs, test_type="bs", n_samples=n_bootstrap)
        test_sigs, scores = test()
        sigs = {k: str(v) for k, v in test_sigs.items()}
        by_name = {n: i for i, n in enumerate(scores["System"])}
        bleu_key = next(k for k in scores if k.startswith("BLEU"))
        chrf_key = next(k for k in scores if k.startswith("chrF"))
        for row in rows:
            i = by_name[row["name"]]
            rb, rc = scores[bleu_key][i], scores[chrf_key][i]
            row.update(p_bleu=rb.p_value, p_chrf=rc.p_value,
                       bleu_ci=None if rb.ci is None else round(rb.ci, 2),
                       bleu_mean=None if rb.mean is None else round(rb.mean, 2))
    return {"systems": rows, "signatures": sigs, "n_sentences": len(references), "baseline": baseline,
            "n_bootstrap": n_bootstrap, "sacrebleu": sb.__version__}
