#!/usr/bin/env bash
# Sets up flowshot in ./.venv: system packages (when run as root), torch, the package.
# Usage: bash scripts/setup.sh            (runtime + tests + logging extras)
set -euo pipefail
cd "$(dirname "$0")/.."

# System libraries: PortAudio for sounddevice, JACK (audio/MIDI server the real-time tests
# run against), PureData (the shipped patches are opened headless in tests).
need_apt=()
command -v jackd >/dev/null 2>&1 || need_apt+=(jackd2)
command -v pd >/dev/null 2>&1 || need_apt+=(puredata-core)
ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || need_apt+=(libportaudio2)
# A C compiler builds the host's voice mixer (realtime/_cmix.c) at install.
command -v cc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install these system packages: ${need_apt[*]} (not root: skipped)" >&2
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
# torch first, pinned: on CPU machines 2.13.0 is a local CPU wheel; an unpinned torch would
# resolve to a multi-GB CUDA build. Any torch >= 2.6 already installed is kept.
if ! .venv/bin/python -c "import torch, sys; sys.exit(0 if tuple(map(int, torch.__version__.split('+')[0].split('.')[:2])) >= (2, 6) else 1)" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==${FLOWSHOT_TORCH_VERSION:-2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[test,logging]"
# aisfx (the offline audio embedding for `flowshot evaluate`) pins ancient numpy/librosa:
# its network and checkpoint are all flowshot needs, so install it without dependencies.
.venv/bin/python -m pip install -q --no-deps "aisfx==0.1.2"
echo "setup: ok (flowshot $(.venv/bin/python -c "import flowshot; print(flowshot.__version__)"))"
