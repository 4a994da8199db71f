"""The decoder's config, its frozen search plan, and the import direction decoder -> plan -> search engines."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

import lmplug
from lmplug.ctc.decoder import CTCDecoder, CTCDecoderConfig, CTCHypothesis, build_ctc_decoder
from lmplug.ctc.labels import build_labels
from lmplug.ctc.plan import SearchPlan
from lmplug.ctc.simulate import pad_batch, simulate_emissions, text_to_char_ids
from lmplug.ctc.types import CTCHypothesis as TypesCTCHypothesis
from lmplug.errors import LmplugError
from lmplug.scorers.zero import ZeroScorer

LABELS = ["", " ", "a", "b", "c", "t"]
CTC_DIR = Path(lmplug.__file__).parent / "ctc"


def _signature_defaults(fn) -> dict:
    return {n: p.default for n, p in inspect.signature(fn).parameters.items() if p.default is not inspect.Parameter.empty}


def test_config_defaults_are_the_factory_and_decoder_defaults():
    fields = dataclasses.asdict(CTCDecoderConfig())
    factory = _signature_defaults(build_ctc_decoder)
    assert {k: factory[k] for k in fields} == fields
    assert set(factory) - set(fields) == {"scorers", "weights"}  # everything else comes from the config
    assert CTCDecoder(build_labels(LABELS), {}, {}).config == CTCDecoderConfig(blank_id=0)


def test_decoder_options_replace_config_fields():
    dec = CTCDecoder(build_labels(LABELS), {}, {}, CTCDecoderConfig(beam_size=4), nbest=2, lookahead=[])
    assert dec.config == CTCDecoderConfig(beam_size=4, nbest=2, blank_id=0) and (dec.beam_size, dec.nbest) == (4, 2)
    with pytest.raises(LmplugError, match=r"unknown \['beam'\]"):
        CTCDecoder(build_labels(LABELS), {}, {}, beam=4)


def test_decoder_keeps_its_config():
    dec = build_ctc_decoder(LABELS, beam_size=4, lookahead=())
    assert dec.config == CTCDecoderConfig(beam_size=4, blank_id=0)
    assert dataclasses.asdict(dec.config)["beam_size"] == dec.beam_size == dec.plan.beam_size


def test_cli_defaults_come_from_the_config():
    from lmplug.cli.main import build_parser

    args = build_parser().parse_args(["decode", "--emissions", "e.npy", "--labels", "l.json"])
    cfg = CTCDecoderConfig()
    for flag, field in (("oov_penalty", "partial_oov_logp"), ("mode", "mode"), ("history_words", "history_words"),
                        ("beam_size", "beam_size"), ("lm_prefilter", "lm_prefilter"),
                        ("token_min_logp", "token_min_logp"), ("search", "search"), ("compile", "compile"),
                        ("nbest", "nbest")):
        assert getattr(args, flag) == getattr(cfg, field), flag
    assert tuple(args.lookahead) == cfg.lookahead


def test_plan_is_frozen_and_rebuilt_by_set_weights():
    dec = build_ctc_decoder(LABELS, {"zero": ZeroScorer()}, {"zero": 0.5, "words": 1.0}, beam_size=4)
    plan = dec.plan
    assert isinstance(plan, SearchPlan)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.beam_size = 8  # type: ignore[misc]
    with pytest.raises(TypeError):
        plan.weights["words"] = 2.0  # type: ignore[index]
    with pytest.raises(TypeError):
        plan.scorers["other"] = ZeroScorer()  # type: ignore[index]
    assert plan.word_scorers == ("zero",) and plan.token_scorers == () and plan.lookahead_scorers == ()
    dec.set_weights({"zero": 0.25, "words": 0.0})
    assert dec.plan is not plan and dict(dec.plan.weights) == {"zero": 0.25, "words": 0.0}
    assert dict(plan.weights) == {"zero": 0.5, "words": 1.0}  # a plan handed out does not change


def test_plan_tries_are_read_only():
    class Known(ZeroScorer):
        def known_words(self):
            return ["cat", "bat"]

    dec = build_ctc_decoder(LABELS, {"k": Known()}, {"k": 1.0}, lexicon=True)
    (trie,) = dec.plan.tries
    assert trie.scorer == "k" and trie.is_word.sum() == 2
    with pytest.raises(ValueError):
        trie.table[0, 0] = 1
    x, lens = pad_batch(simulate_emissions([text_to_char_ids("cat", LABELS)], LABELS, seed=0))
    assert dec.decode(x, lens)[0][0].text == "cat"


def test_hypothesis_type_is_one_type_everywhere():
    assert CTCHypothesis is TypesCTCHypothesis is lmplug.CTCHypothesis


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize("module", ["search.py", "torch_search.py", "plan.py", "types.py"])
def test_search_engines_and_plan_do_not_import_the_decoder(module):
    imported = _imports(CTC_DIR / module)
    assert not any(m == "lmplug.ctc.decoder" or m.startswith("lmplug.ctc.decoder.") for m in imported), imported


def test_search_engines_read_no_private_decoder_attribute():
    for module in ("search.py", "torch_search.py"):
        src = (CTC_DIR / module).read_text(encoding="utf-8")
        private = [n.attr for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Attribute)
                   and n.attr.startswith("_") and not n.attr.startswith("__")
                   and not (isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"))]
        assert private == [], (module, private)


def test_config_fields_have_comments():
    src = (CTC_DIR / "types.py").read_text(encoding="utf-8")
    body = src[src.index("class CTCDecoderConfig"):src.index("class CTCHypothesis")]
    for f in dataclasses.fields(CTCDecoderConfig):
        line = next(ln for ln in body.splitlines() if ln.strip().startswith(f"{f.name}:"))
        assert "  # " in line, f.name
