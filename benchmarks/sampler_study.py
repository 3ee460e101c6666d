"""How a checkpoint's random draws compare, sampler by sampler, through its decoder.

Samplers (all in the prior flow's base space, then ``base_to_latent`` and the decoder):
- ``independent``: each dimension from the training sounds' quantiles (the sampler before
  the copula);
- ``copula``: the same, the noise first correlated like the training sounds (what
  ``flowshot generate`` draws);
- ``kernel h``: a random training sound's base point plus ``h`` times each dimension's
  spread of N(0, 1) noise (``h = 0`` decodes training sounds' modes: reconstructions).

Per sampler and draw seed it prints FAD and KID against the held-out sounds (aisfx
embedding), diversity, novelty (median embedding distance from each sound to its nearest
training sound; the held-out sounds' own is the reference), the share of sustained
sounds (second half within 10 dB of the first eighth), the median RMS level and how far
the set's long-term spectrum is from the held-out sounds' (mean absolute octave-band
difference from 40 Hz up, and over the bands from 2.56 kHz up alone: a wide kernel can
decode bright noise that FAD hardly punishes).

    .venv/bin/python benchmarks/sampler_study.py runs/small-bal-s0/last.ckpt --seeds 0 1 --bandwidths 0 0.6 1
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def sustained_share(audio: np.ndarray) -> float:
    """Share of sounds [N, L] whose second half is within 10 dB of their first eighth."""
    n = audio.shape[1]

    def level(part: slice) -> np.ndarray:
        return 10 * np.log10((audio[:, part].astype(np.float64) ** 2).mean(1) + 1e-12)

    return float(((level(slice(0, n // 8)) - level(slice(n // 2, n))) < 10).mean())


def level_columns(audio: np.ndarray, reference: np.ndarray, sample_rate: int) -> list[str]:
    """Median RMS dBFS, then mean |octave level - reference's| from 40 Hz and from 2.56 kHz."""
    from flowshot.evaluation import metrics

    rms = 10 * np.log10((audio.astype(np.float64) ** 2).mean(1) + 1e-12)
    bands = np.array(metrics.octave_levels_db(*metrics.long_term_spectrum(audio, sample_rate)))
    ref = np.array(metrics.octave_levels_db(*metrics.long_term_spectrum(reference, sample_rate)))
    lows = np.array(metrics.OCTAVE_EDGES[:-1])
    diff = np.abs(bands - ref)
    keep = (lows >= 40) & np.isfinite(diff)
    high = keep & (lows >= 2560)
    return [f"{np.median(rms):.1f}", f"{diff[keep].mean():.1f}", f"{diff[high].mean():.1f}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", nargs="+", default=["builtin:drums"], help="the training sources (default builtin:drums)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--bandwidths", type=float, nargs="+", default=[0.0, 0.6, 1.0])
    ap.add_argument("--neighbours", type=int, default=0,
                    help="also draw between a random training sound and one of its this many nearest (0 = off)")
    ap.add_argument("-n", type=int, default=None, help="draws per sampler (default: the held-out set's size)")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from flowshot.errors import FlowshotError
    from flowshot.evaluation import metrics
    from flowshot.evaluation.embeddings import get_embedding
    from flowshot.evaluation.evaluate import load_real_sets
    from flowshot.model import latents
    from flowshot.model.checkpoint import load_model
    from flowshot.model.data import load_examples

    torch.set_num_threads(1)
    try:
        loaded = load_model(args.checkpoint)
        quantiles = latents.stored_base_quantiles(loaded.meta)
        if quantiles is None:
            raise FlowshotError(f"{args.checkpoint} has no sampling table: run `flowshot stats` on it first")
        real = load_real_sets(loaded, args.data, 1000, 0)
        examples = load_examples(args.data, loaded.config, progress=False)
    except FlowshotError as err:
        print(f"sampler_study.py: {err}", file=sys.stderr)
        return 2
    model, sr = loaded.model.eval(), loaded.config.audio.sample_rate
    mixing = latents.stored_base_mixing(loaded.meta)
    embedding = get_embedding("aisfx")
    e_test, e_train = embedding.embed_at(real.test, sr), embedding.embed_at(real.train, sr)
    train_audio = torch.as_tensor(examples.audio)[examples.train_index()][:, None].float()
    with torch.no_grad():
        _, u_train = latents._encode_all(model, train_audio, 64, False)
    u_train = u_train.float()
    spread = u_train.std(0)
    n = args.n or len(real.test)

    table = Table(title=f"{args.checkpoint}: samplers through the decoder, {n} draws each")
    for col in ("sampler", "draw seed", "FAD", "KID", "diversity", "novelty", "sustained", "RMS dB", "octaves Δ dB", "≥2.56k Δ dB"):
        table.add_column(col, justify="left" if col == "sampler" else "right")
    table.add_row("held-out sounds", "", "", "", f"{metrics.mean_pairwise_distance(e_test):.2f}",
                  f"{np.median(metrics.all_distances(e_test, e_train).min(1)):.2f}", f"{sustained_share(real.test):.2f}",
                  *level_columns(real.test, real.test, sr))
    for seed in args.seeds:
        eps = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
        pick = torch.randint(0, len(u_train), (n,), generator=torch.Generator().manual_seed(seed + 1000))
        draws = {"independent": latents.marginal_base(eps, quantiles),
                 "copula": latents.marginal_base(eps, quantiles, mixing)}
        for h in args.bandwidths:
            draws[f"kernel h={h:g}"] = latents.kernel_point(u_train, spread, pick, eps, h)
        if args.neighbours:
            near = metrics.all_distances(u_train[pick].numpy(), u_train.numpy()).argsort(1)[:, 1:1 + args.neighbours]
            other = torch.as_tensor(near[np.arange(n), np.random.default_rng(seed).integers(0, args.neighbours, n)])
            lam = torch.rand(n, 1, generator=torch.Generator().manual_seed(seed + 2000))
            draws[f"between {args.neighbours} nearest"] = u_train[pick] + lam * (u_train[other] - u_train[pick])
        for name, u in draws.items():
            with torch.no_grad():
                audio = torch.cat([model.render(model.base_to_latent(u[i : i + 64])) for i in range(0, n, 64)])[:, 0].numpy()
            e = embedding.embed_at(audio, sr)
            table.add_row(name, str(seed), f"{metrics.frechet_distance(e, e_test):.1f}",
                          f"{metrics.kernel_distance(e, e_test).mean:.2f}", f"{metrics.mean_pairwise_distance(e):.2f}",
                          f"{np.median(metrics.all_distances(e, e_train).min(1)):.2f}", f"{sustained_share(audio):.2f}",
                          *level_columns(audio, real.test, sr))
    Console(width=200).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
