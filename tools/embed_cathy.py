"""Embed the Cathy corpus (CC0) in the repository as ``data/cathy``: the same recordings and
transcripts, each recording as Opus in Ogg (16 kHz mono in, ``--kbps`` kbit/s) instead of FLAC, so
that the real-speech recipe runs from a clone with nothing beside it (83 MB of FLAC become ~20 MB).

    .venv/bin/python tools/embed_cathy.py --src DIR --out data/cathy   # DIR: a copy with 16 kHz FLAC + manifest.jsonl

What it writes (all at once: nothing is left half-written if it stops): ``audio/<id>.opus``,
``manifest.jsonl`` (the source's rows, ``audio`` renamed), the source's ``LICENSE`` and
``cmuarctic.data``, and ``README.md`` (source, licence, conversion, the manifest's sha256). It
reads every file back and stops at one whose length or level differs from its source's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lmplug.errors import LmplugError  # noqa: E402
from lmplug.files import atomic_dir, read_jsonl, write_lines  # noqa: E402
from lmplug.speech.audio import SAMPLE_RATE, load_audio  # noqa: E402

README = """# Cathy: real English speech, one speaker reading CMU ARCTIC prompts

1,620 recordings (1.37 h; 1,132 distinct prompts, 391 of them read 2-7 times) by one native US
English female speaker, with exact transcripts. Source: the public GitHub repository
rhasspy/dataset-voice-cathy (its README calls the voice "Kathleen"), licence **CC0 1.0** (`LICENSE`).
The project's copy came as 16 kHz mono 16-bit FLAC (converted from the 48 kHz stereo WAV of the
source, two identical channels); this folder holds the same recordings as Opus in Ogg at
{kbps} kbit/s, made by `tools/embed_cathy.py --kbps {kbps}` (libsndfile {libsndfile}); the
transcripts are unchanged.

- `manifest.jsonl`: one line per recording: `id`, `audio` (path relative to this folder), `text`
  (the transcript as written: mixed case and punctuation), `prompt` (the ARCTIC prompt id).
  sha256 `{digest}`. Split by `prompt`, never by recording (`lmplug prepare-real-speech` does).
- `cmuarctic.data`: the ARCTIC prompt list.

The ARCTIC prompts come from Project Gutenberg fiction (James Oliver Curwood, Jack London, Arthur
Conan Doyle, among others); none of those books is in `data/gutenberg` (recipes/asr_real/NOTES.md).
"""


def encode(src: Path, dst: Path, kbps: int) -> float:
    """One recording as Opus at ``kbps``, read back and checked: same length (within 20 ms) and
    level (within 1 dB) as the source. Returns the level difference in dB."""
    import soundfile as sf

    audio = load_audio(src)
    # libsndfile sets the Opus bitrate from a compression level: 0.0 is 256 kbit/s, 1.0 is 6,
    # linear in between
    level = (256 - kbps) / (256 - 6)
    sf.write(str(dst), audio, SAMPLE_RATE, format="OGG", subtype="OPUS", compression_level=level)
    back = load_audio(dst)
    db = 10 * np.log10(float(np.mean(back ** 2)) / max(float(np.mean(audio ** 2)), 1e-12))
    if abs(len(back) - len(audio)) > SAMPLE_RATE // 50 or abs(db) > 1.0:
        raise LmplugError(f"{dst}: expected the source's length and level back, found {len(back)} samples "
                          f"(source {len(audio)}) and {db:+.2f} dB")
    return db


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True, help="the Cathy folder (manifest.jsonl, audio/, LICENSE, cmuarctic.data)")
    ap.add_argument("--out", default=str(ROOT / "data" / "cathy"), help="where to write it")
    ap.add_argument("--kbps", type=int, default=32, help="Opus bitrate, kbit/s (6-256)")
    args = ap.parse_args()
    import soundfile as sf
    from tqdm import tqdm

    src, out = Path(args.src), Path(args.out)
    if not 6 <= args.kbps <= 256:
        raise LmplugError(f"--kbps: expected 6 to 256, found {args.kbps}")
    for name in ("manifest.jsonl", "LICENSE", "cmuarctic.data"):
        if not (src / name).is_file():
            raise LmplugError(f"{src}: expected the Cathy corpus folder with {name}, found none")
    rows = [d for _, d in read_jsonl(src / "manifest.jsonl", "Cathy manifest")]
    levels: list[float] = []

    def write(tmp: Path) -> None:
        (tmp / "audio").mkdir()
        lines = []
        for d in tqdm(rows, unit="file", desc="opus"):
            name = f"audio/{d['id']}.opus"
            levels.append(encode(src / d["audio"], tmp / name, args.kbps))
            lines.append(json.dumps({**d, "audio": name}, ensure_ascii=False))
        write_lines(tmp / "manifest.jsonl", lines)
        for name in ("LICENSE", "cmuarctic.data"):
            shutil.copyfile(src / name, tmp / name)
        digest = hashlib.sha256((tmp / "manifest.jsonl").read_bytes()).hexdigest()
        (tmp / "README.md").write_text(README.format(kbps=args.kbps, digest=digest, libsndfile=sf.__libsndfile_version__))

    atomic_dir(out, write)
    size = sum(p.stat().st_size for p in (out / "audio").iterdir())
    print(f"[embed_cathy] {len(rows)} recordings -> {out} ({size / 1e6:.1f} MB of Opus at {args.kbps} kbit/s); "
          f"level vs source: worst {max(map(abs, levels)):.2f} dB")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LmplugError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
