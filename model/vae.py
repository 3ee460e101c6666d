"""FlowVAE: the whole generator. One latent vector per one-shot, Real NVP flows on both sides.

    audio [B,1,L] --PQMF analysis--> Encoder --> N(mean, std) --posterior flow(context)--> z
    z --Decoder--> sub-bands --PQMF synthesis--> audio [B,1,L]
    u ~ N(0, I) --prior flow--> z          (sampling; ``prior_log_prob`` runs it backwards)

The KL term is a one-sample Monte-Carlo estimate ``log q(z|x) - log p(z)`` (the flows
make the closed form unavailable); ``kl_per_dim`` is the closed-form KL of the base
(pre-flow) posterior per dimension, a diagnostic of active units and the quantity the
training code applies free bits to. With ``cfg.model.flows == False`` both flows have
zero layers (identity, logdet 0) and the model is a plain Gaussian VAE.

Scripting: ``torch.jit.script(model)`` works (weight norm is folded into a copy first,
see ``__prepare_scriptable__``), and ``encode``, ``decode``, ``embed``,
``base_to_latent``, ``latent_to_base``, ``posterior_mode`` and ``prior_log_prob`` are
exported methods of the scripted module.
"""

from typing import Dict, NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

from flowshot.errors import FlowshotError
from flowshot.model.config import FlowshotConfig
from flowshot.model.bodies import BodyOscillators
from flowshot.model.decoder import Decoder
from flowshot.model.encoder import Encoder
from flowshot.model.flows import RealNVP
from flowshot.model.layers import scriptable_copy
from flowshot.model.pqmf import PQMF
from flowshot.model.voice import HarmonicVoice

# log(2 pi) appears written out below: TorchScript cannot read float globals.


class Posterior(NamedTuple):
    """Encoder output: base posterior N(mean, exp(logvar)) [B,D] and the flow context [B,C]."""

    mean: Tensor
    logvar: Tensor
    context: Tensor


def standard_normal_log_prob(u: Tensor) -> Tensor:
    """log N(u; 0, I) summed over the last axis: [B,D] -> [B]."""
    return -0.5 * (u.pow(2) + 1.8378770664093453).sum(dim=-1)


class FlowVAE(nn.Module):
    """The flowshot generator.

    Args:
        cfg: a validated ``FlowshotConfig``; the model reads ``cfg.model`` and
            ``cfg.audio.length`` / ``sample_rate``.
    """

    def __init__(self, cfg: FlowshotConfig) -> None:
        super().__init__()
        m = cfg.model
        self.latent_dim = int(m.latent_dim)
        self.length = int(cfg.audio.length)
        self.sample_rate = int(cfg.audio.sample_rate)
        self.preroll = int(m.decoder_preroll * m.hop)  # samples the decoder makes before the sound
        # No training example peaks above this (its normalisation's target, or the
        # loudness mode's limit): ``render`` holds the played one-shots under it too.
        a = cfg.audio
        self.peak_ceiling = float(10.0 ** ((a.target_peak_db if a.normalize == "peak" else -0.1) / 20.0))
        # ... and ``render`` brings them to the level the examples were normalised to.
        self.level_by_peak = a.normalize == "peak"
        self.level_target = float(10.0 ** ((a.target_peak_db if self.level_by_peak else a.target_rms_db) / 20.0))
        self.max_boost = float(10.0 ** (m.render_boost_max_db / 20.0))
        self.pqmf = PQMF(m.pqmf_bands, m.pqmf_attenuation)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.bodies = BodyOscillators(m.latent_dim, m.body_oscillators, self.sample_rate, self.length,
                                      m.body_min_hz, m.body_max_hz, m.body_input_gain, m.body_drive)
        self.voice = HarmonicVoice(m.latent_dim, m.voice_harmonics, self.sample_rate, self.length,
                                   m.voice_hop(self.sample_rate), m.voice_min_hz, m.voice_max_hz, m.voice_channels,
                                   m.voice_smooth)
        self.posterior_flow = RealNVP(m.latent_dim, m.posterior_flow_depth if m.flows else 0,
                                      m.flow_hidden, context_dim=m.context_dim)
        self.prior_flow = RealNVP(m.latent_dim, m.prior_flow_depth if m.flows else 0, m.flow_hidden)

    @torch.jit.export
    def encode(self, x: Tensor) -> Posterior:
        """audio [B,1,L] -> Posterior(mean [B,D], logvar [B,D], context [B,C])."""
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[2] != self.length:
            raise FlowshotError("model input has shape " + str(list(x.shape)) + " but this model takes audio [batch, 1, "
                                + str(self.length) + "]: crop or pad each one-shot to " + str(self.length) + " samples")
        mean, logvar, context = self.encoder(self.pqmf.analysis(x))
        return Posterior(mean, logvar, context)

    @torch.jit.export
    def posterior_sample(self, post: Posterior, noise: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Reparameterised draw z [B,D] from q(z|x) and its log-density log_q [B].

        ``noise`` (eps [B,D], standard normal) makes the draw reproducible.
        """
        eps = noise if noise is not None else torch.randn_like(post.mean)
        z0 = post.mean + torch.exp(0.5 * post.logvar) * eps
        # log N(z0; mean, std): (z0 - mean) / std is eps by construction.
        log_q0 = -0.5 * (eps.pow(2) + post.logvar + 1.8378770664093453).sum(dim=-1)
        z, logdet = self.posterior_flow(z0, post.context)
        return z, log_q0 - logdet

    @torch.jit.export
    def posterior_mode(self, post: Posterior) -> Tensor:
        """The base posterior's mean pushed through the posterior flow: [B,D], deterministic."""
        return self.posterior_flow(post.mean, post.context)[0]

    @torch.jit.export
    def prior_log_prob(self, z: Tensor) -> Tensor:
        """log p(z) [B] of latents z [B,D] under the flow prior."""
        u, logdet = self.prior_flow.inverse(z)
        return standard_normal_log_prob(u) + logdet

    @torch.jit.export
    def base_to_latent(self, u: Tensor) -> Tensor:
        """Prior base point u [B,D] -> latent z [B,D]."""
        return self.prior_flow(u)[0]

    @torch.jit.export
    def latent_to_base(self, z: Tensor) -> Tensor:
        """Latent z [B,D] -> prior base point u [B,D]."""
        return self.prior_flow.inverse(z)[0]

    @torch.jit.unused
    def sample(self, n: int, temperature: float = 1.0, generator: Optional[torch.Generator] = None) -> Tensor:
        """n latents [n,D] from the prior: u ~ N(0, temperature^2 I), then ``base_to_latent``."""
        ref = self.prior_flow.w3
        u = torch.randn(n, self.latent_dim, generator=generator, device=ref.device, dtype=ref.dtype) * temperature
        return self.base_to_latent(u)

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        """latent z [B,D] -> audio [B,1,L]."""
        return self.synthesize(self.decoder(z), z)

    def synthesize(self, sub: Tensor, z: Tensor) -> Tensor:
        """The decoder's sub-bands [B, bands, (L + P)//bands] made from z [B,D] -> audio
        [B,1,L]: the pre-roll cut, the body oscillators added. In training the
        oscillators send no gradient to z (the encoder: a sine's pitch is a steep function
        of z, and the runs that let it through saturated or diverged) nor, from here, to their pitch
        (``BodyOscillators.forward``); the harmonic voice (``model/voice.py``) none to its pitch."""
        body = self.bodies(z.detach(), True) if self.training else self.bodies(z)
        voice = self.voice(z, self.training)
        return self.pqmf.synthesis(sub)[..., self.preroll:] + body + voice

    @torch.jit.export
    def render(self, z: Tensor) -> Tensor:
        """latent z [B,D] -> the one-shot as played [B,1,L]: ``decode``, scaled down where
        it peaks over ``peak_ceiling`` and, with ``model.render_boost_max_db``, up (by at
        most that) to the level the training examples were normalised to. The decoder
        overshoots: a fifth of the small preset's random draws peak over 0 dBFS, by up
        to 5.5 dB, and would clip in a WAV or a host's mix; and it comes out quiet.
        Training and its losses use ``decode``."""
        y = self.decode(z)
        peak = y.abs().amax(dim=-1, keepdim=True).clamp_min(1e-9)
        gain = self.peak_ceiling / peak
        if self.max_boost > 1.0:
            level = peak if self.level_by_peak else y.square().mean(dim=-1, keepdim=True).sqrt().clamp_min(1e-9)
            gain = torch.minimum(gain, torch.clamp(self.level_target / level, max=self.max_boost))
        else:
            gain = torch.clamp(gain, max=1.0)
        return y * gain

    @torch.jit.export
    def embed(self, x: Tensor) -> Tensor:
        """audio [B,1,L] -> the posterior mode z [B,D] (what export and evaluation use)."""
        return self.posterior_mode(self.encode(x))

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """audio [B,1,L] -> dict(recon [B,1,L], z [B,D], log_q [B], log_p [B], kl [B], kl_per_dim [D],
        wave [B, bands, (L + P)//bands]: the decoder's deterministic part, for its own loss)."""
        post = self.encode(x)
        z, log_q = self.posterior_sample(post, None)
        log_p = self.prior_log_prob(z)
        kl_per_dim = 0.5 * (post.mean.pow(2) + torch.exp(post.logvar) - 1.0 - post.logvar).mean(dim=0)
        wave, noise = self.decoder.parts(z)
        return {
            "recon": self.synthesize(self.decoder.mix(wave, noise), z),
            "wave": wave,
            "z": z,
            "log_q": log_q,
            "log_p": log_p,
            "kl": log_q - log_p,
            "kl_per_dim": kl_per_dim,
        }

    def __prepare_scriptable__(self) -> nn.Module:
        return scriptable_copy(self)
