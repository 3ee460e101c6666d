"""The deployed model's rewrites (snake alphas into convs, interpolating up-samplers as
polyphase convs) keep its function exactly."""

from __future__ import annotations

import copy

import pytest
import torch

from flowshot.export.snake_fold import CosSnake, PrescaledSnake, fold_snakes
from flowshot.export.upsample_fold import fold_upsamplers, tied_polyphase
from flowshot.model.config import preset
from flowshot.model.layers import InterpUpsample, Snake, remove_weight_norm
from flowshot.model.vae import FlowVAE


def model_with_random_alphas(name: str, upsample: str = "polyphase") -> FlowVAE:
    """A preset's model whose alphas are far from their initial 1, so a swapped
    ``alpha`` / ``1 / alpha`` or a missed bias term cannot go unnoticed."""
    torch.manual_seed(0)
    model = FlowVAE(preset(name).replace(**{"model.upsample": upsample})).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("log_alpha"):
                p.normal_(0.0, 0.7)
    return model


@pytest.mark.parametrize("name,upsample", [("tiny", "polyphase"), ("tiny", "linear"), ("small", "linear"),
                                           ("small", "linear,linear,polyphase"), ("small", "linear,balanced,balanced"),
                                           ("small", "sinc,sinc,balanced")])
def test_folded_model_computes_the_same_in_float64(name: str, upsample: str) -> None:
    model = model_with_random_alphas(name, upsample)
    cfg = preset(name)
    reference = remove_weight_norm(copy.deepcopy(model)).double()
    folded = remove_weight_norm(copy.deepcopy(model)).double()
    snakes = sum(isinstance(m, Snake) for m in folded.modules())
    ups = sum(isinstance(m, InterpUpsample) or getattr(m, "balanced", False) for m in folded.modules())
    per_stage = 1 if "," in upsample else len(cfg.model.ratios)
    # The sinc interpolation is left as it is (its snake still folds into its conv).
    foldable = len(upsample.split(",")) - upsample.count("polyphase") - upsample.count("sinc")
    assert fold_upsamplers(folded) == ups == foldable * per_stage
    assert not any(getattr(m, "balanced", False) for m in folded.modules())
    count = fold_snakes(folded)
    # Only the encoder's last snake (read by attention pooling, not a conv) stays.
    assert count == snakes - 1
    assert sum(isinstance(m, Snake) for m in folded.modules()) == 1
    assert any(isinstance(m, CosSnake) for m in folded.modules())
    assert any(isinstance(m, PrescaledSnake) for m in folded.modules())
    g = torch.Generator().manual_seed(1)
    z = torch.randn(3, cfg.model.latent_dim, generator=g, dtype=torch.float64)
    audio = 0.3 * torch.randn(2, 1, cfg.audio.length, generator=g, dtype=torch.float64)
    with torch.no_grad():
        ref_audio, got_audio = reference.decode(z), folded.decode(z)
        ref_enc = reference.encoder(reference.pqmf.analysis(audio))
        got_enc = folded.encoder(folded.pqmf.analysis(audio))
    peak = ref_audio.abs().max()
    assert peak > 0.1
    assert (got_audio - ref_audio).abs().max() / peak < 1e-12
    for got, ref in zip(got_enc, ref_enc):
        assert (got - ref).abs().max() / ref.abs().max().clamp_min(1e-9) < 1e-12


def test_fold_refuses_weight_normed_convs() -> None:
    """Folding into a parametrised weight would be undone by the norm on the next call."""
    model = model_with_random_alphas("tiny")
    with pytest.raises(TypeError, match="weight norm"):
        fold_snakes(copy.deepcopy(model))


def test_inference_model_folds_a_copy_and_scripts() -> None:
    from flowshot.export.ts import inference_model
    from flowshot.model.checkpoint import LoadedModel

    model = model_with_random_alphas("tiny")
    loaded = LoadedModel(model=model, config=preset("tiny"))
    deployed = inference_model(loaded)
    assert not any(isinstance(m, Snake) for m in deployed.decoder.modules())
    # The training model keeps its snakes and weight norm.
    assert sum(isinstance(m, Snake) for m in model.decoder.modules()) > 0
    z = torch.randn(2, preset("tiny").model.latent_dim)
    scripted = torch.jit.script(deployed)
    with torch.no_grad():
        ref = model.decode(z)
        got = scripted.decode(z)
    assert (got - ref).abs().max() / ref.abs().max() < 1e-4


@pytest.mark.parametrize("ratio,frames", [(4, 12), (4, 40), (2, 50), (3, 7)])
def test_tied_polyphase_upsample_equals_interpolate_then_conv(ratio: int, frames: int) -> None:
    """Edges included: the edge padding of the conv after interpolating is what makes the
    one-conv form exact at the first and last samples too. 12 frames takes the
    time-major path, 40 and 50 the conv path."""
    torch.manual_seed(ratio * frames)
    layer = remove_weight_norm(InterpUpsample(6, 5, ratio)).double()
    with torch.no_grad():
        layer.conv.bias.normal_()
        tied = tied_polyphase(layer)
        x = torch.randn(2, 6, frames, dtype=torch.float64)
        ref, got = layer(x), tied(x)
    assert got.shape == ref.shape == (2, 5, frames * ratio)
    assert (got - ref).abs().max() < 1e-12
