#!/usr/bin/env bash
# Set up, then the main job on the built-in default: train on builtin:drums, generate a few
# one-shots and a spectrogram grid of them, export the model for nn~ and the live host.
# Each run gets its own folder under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
run="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
# small (22.05 kHz) for 10 minutes by default; PRESET=tiny MINUTES=1 for a smoke run.
PRESET=${PRESET:-small}
MINUTES=${MINUTES:-10}
.venv/bin/flowshot train builtin:drums --preset "$PRESET" --max-minutes "$MINUTES" --max-steps 1000000 --out "$run"
.venv/bin/flowshot generate "$run/last.ckpt" -n 16 --seed 0 -o "$run/generated"
# Ready to play: the nn~ file for Max/PureData and the live host (it carries the host's
# ONNX twin), and the ONNX export for other runtimes.
.venv/bin/flowshot export ts "$run/last.ckpt" -o "$run/flowshot.ts"
.venv/bin/flowshot export onnx "$run/last.ckpt" -o "$run/onnx"
echo "quickstart: one-shots in $run/generated/*.wav, picture in $run/generated/grid.png"
echo "quickstart: play it: .venv/bin/flowshot realtime play --model $run/flowshot.ts --midi --osc"
echo "quickstart: in Max or PureData (nn~): $run/flowshot.ts, patches in max_patches/"
