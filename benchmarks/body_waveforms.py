"""The first milliseconds of held-out drum bodies, real against each checkpoint's reconstruction.

Magnitude losses do not see how a body's partials line up; the picture does: one row per
class (kick, tom, snare, rim: the first held-out sound of each), the real waveform and each
checkpoint's reconstruction over the first ``--ms`` milliseconds. Below it prints, per
checkpoint, the held-out reconstructions' median crest factor (peak over RMS) and the
median peak / RMS against the real sounds by class.

    .venv/bin/python benchmarks/body_waveforms.py runs/small-logband-s2/last.ckpt runs/small-wave-s2/last.ckpt \
        -o docs/img/body-waveforms.png
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import torch

CLASSES = ("kick", "tom", "snare", "rim")


def _db(v: torch.Tensor) -> torch.Tensor:
    return 20 * torch.log10(v.clamp_min(1e-9))


def main() -> int:
    from held_out import add_data_argument, held_out_drums  # benchmarks/ is a script folder, not a package

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="checkpoints trained on the same data")
    ap.add_argument("-o", "--out", default="body-waveforms.png", help="PNG to write")
    ap.add_argument("--ms", type=float, default=60.0, help="milliseconds shown from the onset")
    add_data_argument(ap)
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flowshot.model.checkpoint import load_model

    torch.set_num_threads(1)
    models = [load_model(p) for p in args.checkpoints]
    cfg = models[0].config
    x, classes = held_out_drums(cfg, data=args.data)
    picks = [next(i for i, c in enumerate(classes) if c == name) for name in CLASSES if name in classes]
    sr = cfg.audio.sample_rate
    n = int(args.ms * 1e-3 * sr)
    t = torch.arange(n) / sr * 1e3

    fig, axes = plt.subplots(len(picks), 1, figsize=(10, 2.2 * len(picks)), squeeze=False)
    for row, i in enumerate(picks):
        axes[row, 0].plot(t, x[i, 0, :n], lw=0.9, color="black", label="real")
        axes[row, 0].set_title(f"{classes[i]} (held-out), first {args.ms:g} ms", fontsize=9)
    print(f"| checkpoint | crest dB (real {float((_db(x.abs().amax(-1)) - _db(x.square().mean(-1).sqrt())).median()):.1f}) "
          f"| peak / RMS against real, dB: {' | '.join(CLASSES)} |")
    for path, loaded in zip(args.checkpoints, models):
        with torch.no_grad():
            y = torch.cat([loaded.model.decode(loaded.model.embed(x[k : k + 32])) for k in range(0, len(x), 32)])
        label = "/".join(Path(path).parts[-2:])
        for row, i in enumerate(picks):
            axes[row, 0].plot(t, y[i, 0, :n], lw=0.8, alpha=0.8, label=label)
        peak = _db(y.abs().amax(-1))[:, 0] - _db(x.abs().amax(-1))[:, 0]
        rms = _db(y.square().mean(-1).sqrt())[:, 0] - _db(x.square().mean(-1).sqrt())[:, 0]
        crest = float((_db(y.abs().amax(-1)) - _db(y.square().mean(-1).sqrt())).median())
        by_class: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for c, p, r in zip(classes, peak.tolist(), rms.tolist()):
            by_class[c].append((p, r))
        cells = []
        for name in CLASSES:
            pairs = by_class.get(name)
            if not pairs:
                cells.append("-")
                continue
            p, r = torch.tensor(pairs).median(dim=0).values.tolist()
            cells.append(f"{p:+.1f} / {r:+.1f}")
        print(f"| {label} | {crest:.1f} | {' | '.join(cells)} |")
    for ax in axes[:, 0]:
        ax.legend(fontsize=7, loc="upper right")
        ax.set_ylim(-1.05, 1.05)
    axes[-1, 0].set_xlabel("ms")
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
