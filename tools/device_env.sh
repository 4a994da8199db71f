# Source me (bash) on the lent GPU machine to use the bundle of tools/device_bundle.sh (issue 6):
#   PYTHON=python3 source tools/device_env.sh [BUNDLE]     # default BUNDLE: .device
# tools/gpu_check.sh does this itself when .device exists. It
#   - installs the bundle's wheels into $LMPLUG_SITE (default /tmp/lmplug-site) and puts it on PYTHONPATH,
#   - compiles kenlm's Python module from the bundled sdist there (no cp312 wheel exists; ~1 min on
#     16 cores; log: $LMPLUG_SITE/kenlm-build.log), unless $PYTHON already imports kenlm,
#   - puts the bundle's bin/ (lmplz, build_binary, espeak-ng) first on PATH.
# Each part that cannot be done says why and leaves the rest working (gpu_check.py then skips the
# steps that need it, and says so). Wheels are for one CPython (MANIFEST.json's python_tag; 3.12, the
# image's, unless made with --python): another Python gets only the programs.
_lmplug_device_env() {
  local bundle=${1:-.device} py=${PYTHON:-python3} site=${LMPLUG_SITE:-/tmp/lmplug-site}
  if [ ! -d "$bundle/bin" ]; then
    echo "[device_env] no bundle at $bundle (make one here with tools/device_bundle.sh, carry it)" >&2
    return 1
  fi
  bundle=$(cd "$bundle" && pwd)
  case $py in */*) py=$(cd "$(dirname "$py")" && pwd)/$(basename "$py");; esac  # the kenlm build runs elsewhere
  mkdir -p "$site" && site=$(cd "$site" && pwd)
  export PATH="$bundle/bin:$PATH"
  echo "[device_env] programs: $(ls "$bundle/bin" | tr '\n' ' ')from $bundle/bin"
  export LMPLUG_BUNDLE="$bundle"
  local tag want
  tag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")') || return 1
  want=$(sed -n 's/.*"python_tag": "\(cp[0-9]*\)".*/\1/p' "$bundle/MANIFEST.json")
  if [ "$tag" != "$want" ]; then
    echo "[device_env] $py is $tag, the bundle's wheels are ${want:-unknown}: wheels and kenlm left out" >&2
    return 0
  fi
  if "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
      "$bundle"/wheels/*.whl; then
    echo "[device_env] wheels: $(ls "$bundle/wheels" | sed 's/-py.*\|-cp.*//' | tr '\n' ' ')-> $site"
  else
    echo "[device_env] pip could not install the bundled wheels: pyctcdecode, jiwer, soundfile missing" >&2
  fi
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  if "$py" -c 'import kenlm' 2>/dev/null; then
    echo "[device_env] kenlm: importable"
    return 0
  fi
  local sdist t0
  sdist=$(ls "$bundle"/src/kenlm-*.tar.gz 2>/dev/null | head -1)
  [ -n "$sdist" ] || { echo "[device_env] no kenlm sdist in $bundle/src: kenlm left out" >&2; return 0; }
  t0=$(date +%s)
  if _lmplug_build_kenlm "$py" "$sdist" "$site" > "$site/kenlm-build.log" 2>&1 && "$py" -c 'import kenlm'; then
    echo "[device_env] kenlm: compiled from $(basename "$sdist") in $(( $(date +%s) - t0 )) s -> $site"
  else
    echo "[device_env] kenlm: the build failed ($site/kenlm-build.log, last lines below): KenLM steps will be skipped" >&2
    tail -5 "$site/kenlm-build.log" >&2
  fi
  return 0
}

# kenlm's Python module straight from its sources with setuptools, in parallel: the sdist's own
# setup.py first builds the whole library with CMake (-j4) and then compiles the same files again
_lmplug_build_kenlm() {
  local py=$1 sdist=$2 site=$3 work
  work=$(mktemp -d /tmp/lmplug-kenlm.XXXXXX)
  tar -xzf "$sdist" -C "$work"
  (cd "$work"/kenlm-* && "$py" - "$site" <<'EOF'
import glob, os, shutil, sys
from setuptools import Extension, setup
files = [f for f in glob.glob("util/*.cc") + glob.glob("lm/*.cc") + glob.glob("util/double-conversion/*.cc")
         + glob.glob("python/*.cc") if not f.endswith(("main.cc", "test.cc"))]
# no compressed-file support: lmplug reads plain ARPA and KenLM binaries
args = ["-O3", "-DNDEBUG", "-DKENLM_MAX_ORDER=6", "-std=c++11", "-DHAVE_CLOCKGETTIME"]
ext = Extension("kenlm", sources=files + ["python/kenlm.cpp"], language="c++", include_dirs=["."],
                libraries=["stdc++", "rt"], extra_compile_args=args)
setup(name="kenlm", ext_modules=[ext], script_args=["build_ext", "--inplace", "-j", str(os.cpu_count() or 4)])
built = glob.glob("kenlm*.so")
if not built:
    sys.exit("no kenlm*.so was built")
shutil.copy(built[0], sys.argv[1])
print("built", built[0])
EOF
  )
  local rc=$?
  rm -rf "$work"
  return $rc
}

_lmplug_device_env "$@"
