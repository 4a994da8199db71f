#!/usr/bin/env bash
# Pack what the lent GPU image lacks into .device/ (issue 6), so that tools/gpu_check.sh there can
# also run the KenLM, pyctcdecode, WER and speech-synthesis parts. Run it here, after `make setup`;
# it checks its own output before it says done. The GPU image (KINDS.md in the device tool) has
# CPython 3.12, torch, torchaudio, numpy 2, sentencepiece, sacrebleu, cmake and a C++ compiler, but
# no kenlm, pyctcdecode, jiwer, soundfile, lmplz or espeak-ng.
#
# Usage (from anywhere):
#   bash tools/device_bundle.sh                      # -> .device/ (~9 MiB; git-ignored), for CPython 3.12
#   bash tools/device_bundle.sh --python 3.11 DIR    # wheels for another CPython (a dry run here)
# Then name it in the device call's carry, with the data the recipes read (built here by
# `make demo` or the recipes' stage 0; 28 MiB together):
#   carry: [".device", "data/bible", "data/gutenberg"]
#   command: OUT=$OUT bash tools/gpu_check.sh ...     # gpu_check.sh sources tools/device_env.sh
#
# What it holds:
#   wheels/  cp312 (--python) manylinux wheels, the versions of this .venv: pyctcdecode, pygtrie, jiwer,
#            rapidfuzz, soundfile, cffi, pycparser (the image has hypothesis, click, numpy)
#   src/     the kenlm sdist (no cp312 wheel exists): tools/device_env.sh compiles its Python module
#            there (~1 min on 16 cores)
#   bin/     lmplz, build_binary (built here by tools/setup.sh) and espeak-ng: wrappers that run the
#            programs in libexec/ on lib/ (what they link beyond the C/C++ runtime, with a no-op
#            libpcaudio, tools/pcaudio_stub.c, in place of the PulseAudio/ALSA chain that --stdout
#            never uses) and espeak-ng on espeak-ng-data/
#   espeak-ng-data/  the phoneme tables, English dictionary, languages and voice variants
#   MANIFEST.json    versions, sizes, and what the self-check here measured
set -euo pipefail
cd "$(dirname "$0")/.."
pyver=3.12
if [ "${1:-}" = --python ]; then pyver=$2; shift 2; fi
out=${1:-.device}
tag=cp${pyver/./}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || { echo "[bundle] expected $PY (run make setup first)" >&2; exit 2; }
for f in .venv/bin/lmplz .venv/bin/build_binary; do
  [ -x "$f" ] || { echo "[bundle] expected $f (run make setup first)" >&2; exit 2; }
done
command -v espeak-ng >/dev/null || { echo "[bundle] expected espeak-ng on PATH (run make setup first)" >&2; exit 2; }
tmp=$out.tmp; rm -rf "$tmp"; mkdir -p "$tmp"/{wheels,src,bin,libexec,lib}

# 1. wheels for the image's Python, pinned to what this .venv runs
ver() { "$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1"; }
quiet_pip() { "$PY" -m pip "$@" 2> >(grep -v '^WARNING: Location' >&2); }  # this host's unused local indexes
plat=""; for p in manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_27_x86_64 manylinux_2_28_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64; do
  plat="$plat --platform $p"; done
for pkg in pyctcdecode pygtrie jiwer rapidfuzz soundfile cffi pycparser; do
  quiet_pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp $plat \
    -d "$tmp/wheels" "$pkg==$(ver $pkg)"
done
# 2. the kenlm sdist, the version of this .venv
quiet_pip download -q --no-deps --no-binary kenlm -d "$tmp/src" "kenlm==$(ver kenlm)"

# 3. programs in libexec/ and the libraries they need beyond glibc and the C++ runtime in lib/
cp .venv/bin/lmplz .venv/bin/build_binary "$(command -v espeak-ng)" "$tmp/libexec/"
base='^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux-x86-64)\.so'
for b in lmplz build_binary; do
  ldd "$tmp/libexec/$b" | awk '/=> \// {print $3}' | while read -r lib; do
    basename "$lib" | grep -Eq "$base" || cp -L "$lib" "$tmp/lib/"
  done
done
# espeak-ng: its own library and libsonic; libpcaudio (and what it pulls) replaced by the stub
lib_of() { ldd "$1" | awk -v n="$2" '$1 == n {print $3}'; }
espeak_lib=$(lib_of "$tmp/libexec/espeak-ng" libespeak-ng.so.1)
cp -L "$espeak_lib" "$(lib_of "$espeak_lib" libsonic.so.0)" "$tmp/lib/"
gcc -shared -fPIC -O2 -Wl,-soname,libpcaudio.so.0 -o "$tmp/lib/libpcaudio.so.0" tools/pcaudio_stub.c
# espeak-ng-data: only what English synthesis reads (its compiled-in path is replaced by ESPEAK_DATA_PATH)
data_dir=$(dirname "$espeak_lib")/espeak-ng-data
[ -d "$data_dir" ] || data_dir=/usr/share/espeak-ng-data
mkdir -p "$tmp/espeak-ng-data"
for f in phondata phonindex phontab intonations en_dict lang voices; do cp -r "$data_dir/$f" "$tmp/espeak-ng-data/"; done
# bin/: wrappers that give each program the bundle's lib/ (and espeak-ng its data) and nothing else;
# a global LD_LIBRARY_PATH would put this host's zlib & co. under the image's own Python and torch
for b in lmplz build_binary espeak-ng; do
  printf '%s\n' '#!/bin/sh' 'd=$(dirname "$(readlink -f "$0")")/..' \
    "LD_LIBRARY_PATH=\"\$d/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\" ESPEAK_DATA_PATH=\"\${ESPEAK_DATA_PATH:-\$d}\" exec \"\$d/libexec/$b\" \"\$@\"" \
    > "$tmp/bin/$b"
  chmod +x "$tmp/bin/$b"
done

# 4. self-check: the bundled programs run on the bundle's libraries alone, and synthesize the same bytes
echo "[bundle] checking $tmp"
benv=(env -i PATH="$tmp/bin:/usr/bin:/bin")
lenv=(env -i LD_LIBRARY_PATH="$tmp/lib")
missing=$("${lenv[@]}" ldd "$tmp/libexec/"* | grep -c "not found" || true)
[ "$missing" = 0 ] || { echo "[bundle] FAILED: unresolved libraries" >&2; "${lenv[@]}" ldd "$tmp/libexec/"* | grep "not found" >&2; exit 1; }
if "${lenv[@]}" ldd "$tmp/libexec/espeak-ng" | grep -Eq 'libpulse|libasound'; then
  echo "[bundle] FAILED: the bundled espeak-ng still links PulseAudio/ALSA" >&2; exit 1
fi
text="in the beginning god created the heaven and the earth"
voices="en-us+m1 en-gb-scotland+f4 en-029+klatt en-us+f2 en-gb-x-rp+m3 en-us+f3"  # train, dev and test kinds
for v in $voices; do
  sum_sys=$(espeak-ng -v "$v" -s 160 -p 45 --stdout "$text" | md5sum | cut -d' ' -f1)
  sum_bun=$("${benv[@]}" espeak-ng -v "$v" -s 160 -p 45 --stdout "$text" | md5sum | cut -d' ' -f1)
  [ "$sum_sys" = "$sum_bun" ] || { echo "[bundle] FAILED: bundled espeak-ng -v $v differs ($sum_bun vs system $sum_sys)" >&2; exit 1; }
done
printf '%s\n%s\n' "$text" "and the earth was without form" > "$tmp/check.txt"
"${benv[@]}" lmplz -o 2 --discount_fallback < "$tmp/check.txt" > "$tmp/check.arpa" 2>/dev/null \
  || { echo "[bundle] FAILED: bundled lmplz did not run" >&2; exit 1; }
grep -q '^\\2-grams:' "$tmp/check.arpa" || { echo "[bundle] FAILED: bundled lmplz wrote no 2-grams" >&2; exit 1; }
rm -f "$tmp/check.txt" "$tmp/check.arpa"

"$PY" - "$tmp" "$voices" "$tag" <<'EOF'
import importlib.metadata as m, json, os, sys, time
from pathlib import Path
root, voices, tag = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3]
files = sorted(p for p in root.rglob("*") if p.is_file())
doc = {"made": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python_tag": tag,
       "kenlm": m.version("kenlm"), "wheels": sorted(p.name for p in (root / "wheels").iterdir()),
       "bin": sorted(p.name for p in (root / "bin").iterdir()), "lib": sorted(p.name for p in (root / "lib").iterdir()),
       "bytes": sum(p.stat().st_size for p in files), "files": len(files),
       "check": {"espeak_ng_same_bytes_as_system": voices, "lmplz_ran": True}}
(root / "MANIFEST.json").write_text(json.dumps(doc, indent=2) + "\n")
print(f"[bundle] {doc['files']} files, {doc['bytes'] / 2**20:.1f} MiB: wheels {len(doc['wheels'])}, "
      f"bin {', '.join(doc['bin'])}, lib {len(doc['lib'])}")
EOF
rm -rf "$out"; mv "$tmp" "$out"
echo "[bundle] ok: $out (espeak-ng wrote the system's bytes in $(echo $voices | wc -w) voices; lmplz ran on the bundle's libraries)"
