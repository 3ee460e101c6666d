"""Prior refit: it lowers the prior NLL of the posteriors, touches nothing but the prior
flow, is deterministic, and `flowshot refit-prior` writes a loadable checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flowshot.model.checkpoint import load_model
from flowshot.model.config import tiny
from flowshot.model.prior_fit import mean_nll, posteriors, refit_prior
from flowshot.model.vae import FlowVAE


def _sounds(n: int, length: int, seed: int) -> torch.Tensor:
    """Decaying noise bursts of random brightness and decay: a spread of posteriors."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / length
    decay = torch.rand(n, 1, generator=g) * 30 + 5
    noise = torch.randn(n, length, generator=g)
    smooth = torch.nn.functional.avg_pool1d(noise[:, None], 9, 1, 4)[:, 0]
    mix = torch.rand(n, 1, generator=g)
    return 0.5 * torch.exp(-decay * t) * (mix * noise + (1 - mix) * 3 * smooth)


def test_refit_lowers_nll_and_changes_only_the_prior(one_thread: None) -> None:
    cfg = tiny()
    torch.manual_seed(0)
    model = FlowVAE(cfg)
    train, val = _sounds(96, cfg.audio.length, 1), _sounds(32, cfg.audio.length, 2)
    others = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("prior_flow.")}
    fit = refit_prior(model, train, 150, val, seed=3)
    assert fit.train_nll_after < fit.train_nll_before - 5.0, fit.summary()
    assert fit.val_nll_after < fit.val_nll_before - 2.0, fit.summary()  # the fit generalises
    # The reported numbers are what the model now gives.
    assert abs(mean_nll(model, posteriors(model, train), seed=3) - fit.train_nll_after) < 1e-3
    for k, v in model.state_dict().items():
        if k in others:
            assert torch.equal(v, others[k]), k

    torch.manual_seed(0)
    again = FlowVAE(cfg)
    refit_prior(again, train, 150, None, seed=3)
    for (k, a), b in zip(model.prior_flow.state_dict().items(), again.prior_flow.state_dict().values()):
        assert torch.equal(a, b), k  # seeded: every DDP rank computes the same prior


def test_refit_refuses_a_model_without_flows() -> None:
    cfg = tiny().replace(**{"model.flows": False})
    with pytest.raises(ValueError, match="no prior flow"):
        refit_prior(FlowVAE(cfg), _sounds(8, cfg.audio.length, 0), 5)


def test_refit_prior_command_writes_a_new_checkpoint(tiny_checkpoint: Path, tmp_path: Path, one_thread: None) -> None:
    from flowshot.cli import main

    out = tmp_path / "refit.ckpt"
    assert main(["refit-prior", str(tiny_checkpoint), "-o", str(out), "--steps", "60",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    old, new = load_model(tiny_checkpoint), load_model(out)
    changed = [k for k, v in new.model.state_dict().items() if not torch.equal(v, old.model.state_dict()[k])]
    assert changed and all(k.startswith("prior_flow.") for k in changed)
    stats = new.meta["latent_stats"]
    assert stats is not None and torch.as_tensor(stats["pad_base"]).shape[1] == new.config.model.latent_dim
    # The pads sit where the new prior puts their latents.
    z = torch.as_tensor(stats["pad_latents"], dtype=torch.float32)
    with torch.no_grad():
        u = new.model.latent_to_base(z)
    torch.testing.assert_close(u, torch.as_tensor(stats["pad_base"], dtype=torch.float32), atol=1e-4, rtol=1e-4)
    assert main(["refit-prior", str(tiny_checkpoint), "-o", str(tiny_checkpoint)]) == 2  # never overwrites its input
