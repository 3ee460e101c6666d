"""Refit the prior flow to a trained encoder's posteriors, everything else frozen.

During training the prior flow learns by maximum likelihood on the posterior samples of
each batch, but those posteriors move at every step and the prior chases them one batch
at a time. At the end it lags: on `small` after 50 minutes on builtin:drums, held-out
posterior samples mapped to the prior's base space had a median standard deviation of
0.82 instead of 1, and prior draws decoded about 3 dB quieter than reconstructions.
Two thousand steps on the final, fixed posteriors (about a minute on a CPU) close that
gap: held-out NLL 42 nats better, base spread 0.99, samples 2 dB louder. Yet the refitted
prior's samples scored worse (FAD +5 on two seeds, lower diversity; docs/evaluation.md):
the better density covers the posterior noise around the modes, not more of the sounds.
So training does not refit; ``flowshot refit-prior`` keeps the experiment reproducible.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from flowshot.model.vae import FlowVAE, Posterior, standard_normal_log_prob


@dataclass
class PriorFit:
    """What a refit did: mean negative log-likelihood (nats per sound) of posterior
    samples under the prior, on the training sounds and on held-out ones (None without)."""

    steps: int
    train_nll_before: float
    train_nll_after: float
    val_nll_before: Optional[float]
    val_nll_after: Optional[float]

    def summary(self) -> str:
        val = ""
        if self.val_nll_before is not None:
            val = f", held-out {self.val_nll_before:.1f} -> {self.val_nll_after:.1f}"
        return (f"prior refit ({self.steps} steps): NLL of posterior samples, nats per sound: "
                f"training {self.train_nll_before:.1f} -> {self.train_nll_after:.1f}{val}")


@torch.no_grad()
def posteriors(model: FlowVAE, audio: Tensor, batch_size: int = 64) -> Posterior:
    """The posteriors of sounds [N, L] (the model in eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    parts = [model.encode(audio[i : i + batch_size, None]) for i in range(0, len(audio), batch_size)]
    model.train(was_training)
    return Posterior(*[torch.cat([getattr(p, f) for p in parts]) for f in Posterior._fields])


def _index(post: Posterior, idx: Tensor) -> Posterior:
    return Posterior(*[t[idx] for t in post])


@torch.no_grad()
def mean_nll(model: FlowVAE, post: Posterior, seed: int = 0, batch_size: int = 256) -> float:
    """Mean -log p(z) over one posterior sample per sound (fixed noise: comparable before/after)."""
    g = torch.Generator(device=post.mean.device).manual_seed(seed)
    total = 0.0
    for i in range(0, len(post.mean), batch_size):
        part = _index(post, torch.arange(i, min(i + batch_size, len(post.mean))))
        noise = torch.randn(part.mean.shape, generator=g, device=part.mean.device)
        z, _ = model.posterior_sample(part, noise)
        total += float(-model.prior_log_prob(z).sum())
    return total / len(post.mean)


def refit_prior(model: FlowVAE, train_audio: Tensor, steps: int, val_audio: Optional[Tensor] = None,
                batch_size: int = 256, lr: float = 5e-4, seed: int = 0,
                progress: Optional[Callable[[int, int], None]] = None) -> PriorFit:
    """Fit ``model.prior_flow`` by maximum likelihood to posterior samples of ``train_audio``.

    Args:
        model: a trained ``FlowVAE`` with flows; only its prior flow changes (in place).
        train_audio: training sounds [N, L] at the model's rate and length.
        steps: Adam steps of ``batch_size`` posterior samples each (fresh noise every step).
        val_audio: held-out sounds [M, L] to report the fit on (optional).
        lr: Adam learning rate.
        seed: seed of the batches and the posterior noise (every DDP rank gets the same result).
        progress: called as ``progress(step, steps)``.
    Returns:
        the NLLs before and after.
    """
    if model.prior_flow.depth == 0:
        raise ValueError("refit_prior: the model has no prior flow (trained with --no-flows)")
    train_post = posteriors(model, train_audio)
    val_post = posteriors(model, val_audio) if val_audio is not None and len(val_audio) else None
    before = (mean_nll(model, train_post, seed), mean_nll(model, val_post, seed) if val_post is not None else None)
    # A private copy trains: the model's own parameters may be hooked by DDP or owned by
    # Lightning's optimisers; the result is copied back at the end.
    flow = copy.deepcopy(model.prior_flow).train()
    for p in flow.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    g = torch.Generator(device=train_post.mean.device).manual_seed(seed)
    n = len(train_post.mean)
    for step in range(steps):
        idx = torch.randint(n, (min(batch_size, n),), generator=g, device=train_post.mean.device)
        batch = _index(train_post, idx)
        with torch.no_grad():
            noise = torch.randn(batch.mean.shape, generator=g, device=batch.mean.device)
            z, _ = model.posterior_sample(batch, noise)
        u, logdet = flow.inverse(z)
        nll = -(standard_normal_log_prob(u) + logdet).mean()
        optimizer.zero_grad(set_to_none=True)
        nll.backward()
        optimizer.step()
        if progress is not None:
            progress(step + 1, steps)
    with torch.no_grad():
        for dst, src in zip(model.prior_flow.parameters(), flow.parameters()):
            dst.copy_(src)
    after = (mean_nll(model, train_post, seed), mean_nll(model, val_post, seed) if val_post is not None else None)
    return PriorFit(steps, before[0], after[0], before[1], after[1])
