"""Where in each PQMF sub-band the decoder's two branches put their energy, against the target.

The decoder makes each sub-band as a deterministic part plus a fixed noise under a learned
gain (``model/decoder.py``). Which of the two carries a band, and whether the
deterministic part hides an offset there (which rings on a band edge), shows in the
sub-band's own spectrum: this splits it into four quarters, from the sub-band's 0 Hz (a
band edge of the full-band sound) up, plus its lowest three bins (the offset), each in
dB of the real sub-band's total energy, summed over held-out sounds of ``builtin:drums``. A second table
gives, per class, each branch's spectral flatness in the upper sub-bands
(``losses.wave_flatness``: 0 for lines, 0.56 for white noise) against the real sounds'.

    .venv/bin/python benchmarks/branch_spectra.py runs/base-s0/last.ckpt --sounds 64
"""

from __future__ import annotations

import argparse

import torch
from rich.console import Console
from rich.table import Table

QUARTERS = ("q0", "q1", "q2", "q3")


def quarter_energies(sub: torch.Tensor) -> torch.Tensor:
    """Sub-bands [N, bands, T] -> energy per band in the 4 quarters of each sub-band's own
    spectrum and in its lowest 3 bins, summed over the N sounds: [bands, 5]."""
    power = torch.fft.rfft(sub, dim=-1).abs().square().sum(0)
    f = power.shape[-1]
    parts = [power[:, i * f // 4 : (i + 1) * f // 4].sum(-1) for i in range(4)] + [power[:, :3].sum(-1)]
    return torch.stack(parts, dim=-1)


def main() -> int:
    from held_out import add_data_argument, held_out_drums  # benchmarks/ is a script folder, not a package

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="a checkpoint")
    ap.add_argument("--sounds", type=int, default=64, help="held-out sounds to measure")
    add_data_argument(ap)
    args = ap.parse_args()

    from flowshot.model.checkpoint import load_model
    from flowshot.model.losses import wave_flatness

    torch.set_num_threads(1)
    loaded = load_model(args.checkpoint)
    model, cfg = loaded.model.eval(), loaded.config
    x, classes = held_out_drums(cfg, args.sounds, args.data)
    with torch.no_grad():
        z = model.embed(x)
        wave, noise = model.decoder.parts(z)
        real = model.pqmf.analysis(x)
    # The decoder's sub-bands carry the pre-roll frames before the sound; the real ones do not.
    wave, noise = wave[..., -real.shape[-1]:], noise[..., -real.shape[-1]:]
    tables = {name: quarter_energies(s) for name, s in (("real", real), ("deterministic", wave), ("noise", noise))}
    total = tables["real"][:, :4].sum(-1, keepdim=True).clamp_min(1e-20)

    table = Table(title=f"{args.checkpoint}: sub-band spectra, dB of the real band's energy "
                        f"(q0 = the sub-band's 0 Hz quarter; 0 Hz = its lowest 3 bins)")
    table.add_column("band", justify="right")
    for name in tables:
        for q in (*QUARTERS, "0 Hz"):
            table.add_column(f"{name[:5]} {q}", justify="right")
    for band in range(real.shape[1]):
        cells = [f"{float(10 * torch.log10(v / total[band] + 1e-20)):.1f}" for t in tables.values() for v in t[band]]
        table.add_row(str(band), *cells)
    Console(width=200).print(table)

    fft = cfg.loss.flatness_fft
    flat = Table(title=f"spectral flatness of the upper sub-bands ({fft}-point frames, energy-weighted; "
                       "0 = lines, 0.56 = white noise)")
    for name in ("class", "sounds", "real", "deterministic", "noise", "both"):
        flat.add_column(name, justify="left" if name == "class" else "right")
    for name in [*sorted(set(classes)), "all"]:
        pick = torch.tensor([c == name or name == "all" for c in classes])
        cells = [f"{wave_flatness(s[pick], fft).item():.3f}" for s in (real, wave, noise, wave + noise)]
        flat.add_row(name, str(int(pick.sum())), *cells)
    Console(width=200).print(flat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
