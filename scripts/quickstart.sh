#!/usr/bin/env bash
# Set up, then the main job on the built-in default: train on builtin:drums, generate a few
# one-shots and a spectrogram grid of them. Each run gets its own folder under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
run="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
PRESET=${PRESET:-tiny}
STEPS=${STEPS:-600}
.venv/bin/flowshot train builtin:drums --preset "$PRESET" --max-steps "$STEPS" --out "$run"
.venv/bin/flowshot generate "$run/last.ckpt" -n 16 --temperature 0.8 --seed 0 -o "$run/generated"
echo "quickstart: one-shots in $run/generated/*.wav, picture in $run/generated/grid.png"
