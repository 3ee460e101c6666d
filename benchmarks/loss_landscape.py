"""What a preset's reconstruction loss says about a drum body an octave off.

A decaying sine (a tom's body: ``--hz`` ringing with time constant ``--decay``), with an
independent faint noise floor under each sound, is scored against itself, against the
same body a fifth or an octave off, and against nothing but the floor, term by term
(``MultiScaleSTFTLoss.components``) and as the preset weighs them. Two transport columns
show what the spectral transport term would say, on the whole spectrum and under 640 Hz
(off in the presets).

The STFT terms compare bins: a body in the wrong octave shares none with the right one,
so moving it costs no less on the way, and a body anywhere scores far better than none.
That is the shape of the trap several `small` runs fell into: toms 10-17 dB short at
80-160 Hz with their energy at 20-80 Hz (docs/evaluation.md).

    .venv/bin/python benchmarks/loss_landscape.py --preset small --hz 120
"""

from __future__ import annotations

import argparse
import math

import torch
from rich.console import Console
from rich.table import Table

# (name, frequency ratio to the real body; None = no body)
CANDIDATES = (("the same body", 1.0), ("a fifth low", 2 / 3), ("an octave low", 0.5),
              ("an octave high", 2.0), ("no body", None))
LOW_HZ = 640.0  # the low-band transport column's cut-off: every built-in body's strike pitch is under it


def landscape(preset_name: str, hz: float, decay_s: float, floor: float = 1e-3, seed: int = 0) -> list[dict[str, float]]:
    """Rows of ``CANDIDATES``: each unweighted term, ``weighted`` (the preset's total),
    ``transport`` (the transport term at weight 1) and ``low_transport`` (the same under
    ``LOW_HZ`` only), against the real body."""
    from flowshot.model.config import preset
    from flowshot.model.losses import stft_loss_from_config

    cfg = preset(preset_name)
    loss = stft_loss_from_config(cfg)
    transport = stft_loss_from_config(cfg.replace(**{"loss.stft_ot_weight": 1.0}))
    low = stft_loss_from_config(cfg.replace(**{"loss.stft_ot_weight": 1.0, "loss.stft_ot_max_hz": LOW_HZ}))
    sr, n = cfg.audio.sample_rate, cfg.audio.length
    t = torch.arange(n, dtype=torch.float32) / sr
    gen = torch.Generator().manual_seed(seed)

    def sound(f: float | None) -> torch.Tensor:
        body = torch.sin(2 * math.pi * f * t) * torch.exp(-t / decay_s) if f is not None else torch.zeros(n)
        return (body + floor * torch.randn(n, generator=gen))[None, None]

    real = sound(hz)
    rows = []
    with torch.no_grad():
        for name, ratio in CANDIDATES:
            y = sound(hz * ratio if ratio is not None else None)
            terms = loss.components(y, real)
            rows.append({"name": name, **{k: float(v) for k, v in terms._asdict().items()},
                         "weighted": float(loss.weigh(terms)),
                         "transport": float(transport.components(y, real).transport),
                         "low_transport": float(low.components(y, real).transport)})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small", help="whose loss (tiny, small, base)")
    ap.add_argument("--hz", type=float, default=120.0, help="the body's frequency (the built-in toms: 85 to 230 Hz)")
    ap.add_argument("--decay", type=float, default=0.25, help="its decay time constant, s (toms: 0.12 to 0.45)")
    args = ap.parse_args()
    rows = landscape(args.preset, args.hz, args.decay)
    terms = ("linear", "log", "band", "texture")
    table = Table(title=f"`{args.preset}` loss: a {args.hz:g} Hz body (decay {args.decay:g} s) against candidates")
    table.add_column("candidate")
    columns = (*terms, "weighted", "transport", "low_transport")
    for name in columns:
        table.add_column(name if name != "low_transport" else f"transport < {LOW_HZ:g} Hz", justify="right")
    for row in rows:
        table.add_row(row["name"], *[f"{row[k]:.3f}" for k in columns])
    Console(width=160).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
