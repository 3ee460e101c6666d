"""Whether the decoder's envelopes still reach silence, per class of held-out sounds.

The deterministic part of each sub-band is a signal under a multiplicative envelope
(``model/decoder.py``), so that a hit can decay to true silence. ``model.wave_zero_mean``
takes an offset out of the upper sub-bands after that envelope: a flat time mean taken
out of a short hit comes back as a constant over the whole silent rest of the sound, the
enveloped offset (``model.wave_mean_shape=envelope``) only where the envelope is open.
Per class this prints, over the upper sub-bands (1 up):

* quiet: the share of sub-band samples whose envelope is under ``--quiet-db`` of its peak;
* floor: the deterministic part's level on those samples, dB of its mean power, as the
  decoder plays it and before the offset was taken out;
* 0 Hz: the share of the band's energy in its 0 Hz bin (one bin of the sub-band's
  spectrum, at the band edge where an offset rings), for the real sounds and the
  reconstructions.

    .venv/bin/python benchmarks/envelope_floor.py runs/base-s0/last.ckpt
"""

from __future__ import annotations

import argparse

import torch
from rich.console import Console
from rich.table import Table


def quiet_floor(wave: torch.Tensor, envelope: torch.Tensor, quiet_db: float = -60.0) -> tuple[float, float]:
    """Sub-bands [N, bands, T] and their envelopes (same shape) -> (share of the samples
    whose envelope is under ``quiet_db`` of its own peak, the wave's power there in dB of
    its mean power over every sample); the floor is -inf where nothing is quiet."""
    quiet = envelope < envelope.amax(-1, keepdim=True) * 10 ** (quiet_db / 20)
    share = float(quiet.float().mean())
    power = wave.square()
    there = float((power * quiet).sum() / quiet.sum().clamp_min(1))
    return share, 10 * float(torch.log10(torch.tensor(there / float(power.mean()))))


def zero_hz_share_db(sub: torch.Tensor) -> float:
    """Sub-bands [N, bands, T] -> median over the sounds of the 0 Hz bin's share of each
    sound's energy, summed over the bands, dB (one bin in T/2 + 1 of a flat spectrum)."""
    power = torch.fft.rfft(sub, dim=-1).abs().square()
    share = power[..., 0].sum(-1) / power.sum((-1, -2)).clamp_min(1e-20)
    return float(10 * torch.log10(share.median().clamp_min(1e-20)))


def main() -> int:
    from held_out import add_data_argument, held_out_drums  # benchmarks/ is a script folder, not a package

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="a checkpoint")
    ap.add_argument("--quiet-db", type=float, default=-60.0, help="an envelope this far under its peak is silent")
    add_data_argument(ap)
    args = ap.parse_args()

    from flowshot.model.checkpoint import load_model
    from flowshot.model.decoder import mod_sigmoid

    torch.set_num_threads(1)
    loaded = load_model(args.checkpoint)
    model, cfg = loaded.model.eval(), loaded.config
    x, classes = held_out_drums(cfg, data=args.data)
    dec = model.decoder
    with torch.no_grad():
        z = model.embed(x)
        heads = dec.heads(z)
        envelope = mod_sigmoid(heads[:, dec.bands + 1: 2 * dec.bands])
        before = heads[:, 1: dec.bands] * envelope
        played = dec.parts(z)[0][:, 1:]
        real = model.pqmf.analysis(x)[:, 1:]
        recon = model.pqmf.analysis(model.decode(z))[:, 1:]

    table = Table(title=f"{args.checkpoint}: upper sub-bands' envelopes on {len(classes)} held-out sounds "
                        f"(quiet: under {args.quiet_db:g} dB of the envelope's peak)")
    for name in ("class", "sounds", "quiet", "floor dB", "floor before the offset went", "0 Hz: real", "0 Hz: recon"):
        table.add_column(name, justify="left" if name == "class" else "right")
    for name in sorted(set(classes)):
        pick = torch.tensor([c == name for c in classes])
        share, floor = quiet_floor(played[pick], envelope[pick], args.quiet_db)
        _, floor_before = quiet_floor(before[pick], envelope[pick], args.quiet_db)
        table.add_row(name, str(int(pick.sum())), f"{100 * share:.0f} %", f"{floor:.1f}", f"{floor_before:.1f}",
                      f"{zero_hz_share_db(real[pick]):.1f}", f"{zero_hz_share_db(recon[pick]):.1f}")
    Console(width=200).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
