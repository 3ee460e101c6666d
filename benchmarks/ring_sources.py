"""Where the band-edge ring comes from: what the upper sub-bands' signals and envelopes share.

Each upper sub-band's deterministic part is ``signal * envelope`` (``model/decoder.py``).
A tone on a band edge is that product's 0 Hz, and by Parseval the product's 0 Hz is the
sum over frequency of the signal's spectrum times the envelope's (conjugated): content the
two share at any one frequency lands there. This splits that sum over slices of the
sub-band spectrum (in the sub-band's own Hz, 0 to half the sub-band rate), as a share of
the 0 Hz value, signed so that what builds the tone counts positive, over the upper
sub-bands of the held-out reconstructions. The last up-sampler's ripple (a period of its
ratio, 4 sub-band samples in every preset) sits at a quarter of the sub-band rate; the
first frame rate's multiples (86.1 Hz in `small`) on the slice borders. The last column
is each checkpoint's ring per reconstruction (``metrics.band_edge_ring_db``).

    .venv/bin/python benchmarks/ring_sources.py runs/drums/last.ckpt runs/words/last.ckpt \\
        --data builtin:drums data/words
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from rich.console import Console
from rich.table import Table


def shared_at_zero(signal: np.ndarray, envelope: np.ndarray, slices: int) -> tuple[np.ndarray, np.ndarray]:
    """Upper signals and envelopes [N, C, T] -> (their product's 0 Hz per sound and band
    [N, C], its parts from each of ``slices`` equal slices of 0 to half the rate [slices, N, C]).

    The parts sum to the 0 Hz value (negative and positive frequencies folded together)."""
    t = signal.shape[-1]
    cross = (np.fft.fft(signal) * np.conj(np.fft.fft(envelope))).real / t
    freq = np.abs(np.fft.fftfreq(t))  # cycles per sample, 0 to 0.5
    which = np.minimum((freq * 2 * slices).astype(int), slices - 1)
    parts = np.stack([cross[..., which == k].sum(-1) for k in range(slices)])
    return (signal * envelope).sum(-1), parts


def main() -> int:
    from held_out import held_out_reconstructions  # benchmarks/ is a script folder, not a package

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="checkpoints, each with its data set (--data, same order)")
    ap.add_argument("--data", nargs="+", default=None,
                    help="per checkpoint, the folder or builtin:drums it was trained on (default builtin:drums for all)")
    ap.add_argument("--slices", type=int, default=8, help="equal slices of the sub-band spectrum (default 8)")
    args = ap.parse_args()
    data = args.data or ["builtin:drums"] * len(args.checkpoints)
    if len(data) != len(args.checkpoints):
        ap.error(f"--data needs one entry per checkpoint ({len(args.checkpoints)}), got {len(data)}")

    from flowshot.evaluation.metrics import band_edge_ring_db

    torch.set_num_threads(1)
    table = None
    for path, folder in zip(args.checkpoints, data):
        cfg, _, _, y, z, model = held_out_reconstructions(path, data=[folder])
        dec = model.decoder
        rate = cfg.audio.sample_rate / dec.bands
        if table is None:
            table = Table(title="the upper sub-bands' 0 Hz (the band-edge ring): share from what signal and "
                                "envelope share in each slice of the sub-band spectrum")
            table.add_column("checkpoint")
            for k in range(args.slices):
                table.add_column(f"{k * rate / 2 / args.slices:.0f}-{(k + 1) * rate / 2 / args.slices:.0f} Hz",
                                 justify="right")
            table.add_column("ring, median dB", justify="right")
        with torch.no_grad():
            signal, envelope = dec.signal_and_envelope(dec.heads(z))
        total, parts = shared_at_zero(signal[:, 1:].double().numpy(), envelope[:, 1:].double().numpy(), args.slices)
        shares = (parts * np.sign(total)).sum((1, 2)) / np.abs(total).sum()
        ring = band_edge_ring_db(y[:, 0].numpy(), cfg.audio.sample_rate, dec.bands)
        table.add_row(path, *(f"{s:+.2f}" for s in shares), f"{np.median(ring):+.1f}")
    Console(width=220).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
