"""The nn~ instrument: a trained FlowVAE wrapped as an ``nn_tilde.Module`` for TorchScript.

nn~ methods (every inlet and outlet at audio rate, ratio 1):

- ``sample``  in: trigger, K macro knobs  -> out: audio.
  A rising edge of the trigger draws a base point ``u`` in the prior's base space
  (``prior_base``). Its randomness comes from the counter-based generator of
  ``flowshot.export.rng``: key = ``seed``, counter 0 when ``seed >= 0``; an internal hit
  counter when ``seed == -1``. With the training sounds' base points stored (the default)
  it is a kernel draw: a training sound's point, chosen by ``uniform_index``, plus
  ``temperature * kernel_bandwidth * base_spread * eps`` (temperature 0 plays the training
  sounds' own modes); without them ``u = marginal_base(temperature * eps)``, each
  dimension with the training sounds' distribution and correlations (see
  ``flowshot.model.latents``). ``u`` then moves by
  ``sum_k knob_k * macro_std[k] * macro_directions[k]`` (knob 1.0 = one std along the
  k-th principal direction), is mapped by ``base_to_latent`` and decoded to one one-shot.
- ``decode``  in: trigger, D latent channels -> out: audio (the latent present at the edge).
- ``encode``  in: audio -> out: trigger pulse, D latent channels (decode's inlet order).
  A hit is the first sample with ``|x| >= 10**(threshold/20)`` (``threshold`` in dBFS);
  ``listen`` samples from that one (inclusive) are encoded (zero-padded to the model length)
  and at the last listened sample the trigger outlet pulses for one sample at the peak level
  of the window while the latent outlets switch to the new latent and hold it. The detector
  re-arms once the input has fallen 6 dB below the threshold after the listening window:
  one drum hit is one detection. Latency: ``listen - 1`` samples (plus nn~'s buffering).
- ``forward`` in: audio -> out: audio; ``decode(encode(x))``, a drum replacer.

Each hit's one-shot plays from the exact sample of its edge, scaled by the trigger value,
through the shared :class:`flowshot.export.voices.VoiceBank` (``polyphony`` overlapping
voices; the oldest is stolen and fades out over ``STEAL_FADE_S``). The model runs at its
own rate; ``set_sample_rate`` (called by nn~ with the host's rate) makes each one-shot be
resampled to the host rate once, at its hit, and the encoder's window be resampled to the
model rate; sample counts (``listen``, voice lengths) are then at the host rate. ``get_info`` always reports the model's own rate.
"""

from typing import List

import nn_tilde
import torch
from torch import Tensor, nn

from flowshot.export.rng import gaussian, uniform_index
from flowshot.export.voices import VoiceBank

STEAL_FADE_S = 0.005  # a stolen voice's fade-out, as the live host's choke_fade_ms
from flowshot.model.latents import KERNEL_BANDWIDTH, kernel_point, marginal_base


class FlowshotInstrument(nn_tilde.Module):
    """The trained model as an nn~ instrument; state (voices, encoder) lives in buffers.

    Args:
        model: a FlowVAE in eval mode, weight norm already folded (scriptable).
        stats: ``compute_latent_stats`` output (macro_directions [K,D], macro_std [K],
            base_mean [D], macro_labels, pad_latents [P,D], pad_classes, pad_base [P,D]).
        sample_rate: the model's sample rate (Hz).
        length: samples per one-shot.
        polyphony: initial number of overlapping voices (1..32).
        audio_config: the checkpoint's ``AudioConfig`` as JSON (trim, normalisation...), so
            a host that encodes files prepares them the way the training data was.
    """

    macro_labels: List[str]
    pad_classes: List[str]
    audio_config: str

    def __init__(self, model: nn.Module, stats: dict, sample_rate: int, length: int, polyphony: int = 8,
                 audio_config: str = "{}") -> None:
        super().__init__()
        # nn_tilde lists a placeholder "none" attribute with no getter or params; every
        # attribute this file lists is settable instead (what `flowshot export check` verifies).
        self._attributes = []
        self.model = model
        directions = torch.as_tensor(stats["macro_directions"], dtype=torch.float32)
        self.n_macros = int(directions.size(0))
        self.latent_dim = int(directions.size(1))
        self.sample_rate = int(sample_rate)
        self.length = int(length)
        # nn~ tells the host rate through set_sample_rate; one-shots are resampled to it at
        # each hit (and the encoder's window back to the model rate), so voices, `listen`
        # and all sample positions are counted at the host rate.
        self.host_rate = int(sample_rate)
        self.host_length = int(length)
        self.register_buffer("macro_directions", directions.clone())
        self.register_buffer("macro_std", torch.as_tensor(stats["macro_std"], dtype=torch.float32).clone())
        self.register_buffer("base_mean", torch.as_tensor(stats["base_mean"], dtype=torch.float32).clone())
        self.register_buffer("pad_latents", torch.as_tensor(stats["pad_latents"], dtype=torch.float32).reshape(-1, self.latent_dim).clone())
        self.register_buffer("pad_base", torch.as_tensor(stats["pad_base"], dtype=torch.float32).reshape(-1, self.latent_dim).clone())
        # Random draws: kernel draws around the training sounds' base points when they are
        # stored, else each base dimension's training distribution and correlations
        # (flowshot.model.latents.marginal_base); an empty table = plain N(0, T^2) draws,
        # empty mixing = independent dimensions.
        for key in ("base_points", "base_spread", "base_quantiles", "base_mixing"):
            value = stats.get(key)
            value = torch.zeros(0, self.latent_dim) if value is None else torch.as_tensor(value, dtype=torch.float32)
            self.register_buffer(key, value.reshape(-1, self.latent_dim).clone())
        if self.base_spread.size(0) != 1:
            self.base_points = torch.zeros(0, self.latent_dim)  # points without their spread: no kernel
        self.kernel_bandwidth = float(stats.get("kernel_bandwidth", KERNEL_BANDWIDTH))
        self.macro_labels = [str(s) for s in stats["macro_labels"]]
        self.pad_classes = [str(s) for s in stats["pad_classes"]]
        self.audio_config = str(audio_config)
        self.steal_fade_s = STEAL_FADE_S
        self.voices = VoiceBank(self.length, polyphony=polyphony, fade=self._fade_samples(self.sample_rate))

        # Per-instance state beside the voices: hit counter of the free-running stream,
        # the last latent each row played, and the encoder's detector / listening buffer.
        self.register_buffer("draws", torch.zeros(1, dtype=torch.long))
        self.register_buffer("last_latent", torch.zeros(0, self.latent_dim))
        self.register_buffer("enc_armed", torch.zeros(0, dtype=torch.bool))
        self.register_buffer("enc_fill", torch.zeros(0, dtype=torch.long))
        self.register_buffer("enc_buffer", torch.zeros(0, self.host_length))
        self.register_buffer("enc_latent", torch.zeros(0, self.latent_dim))

        self.temperature_value = 1.0
        self.seed_value = -1
        self.threshold_value = -24.0
        self.listen_value = self.length
        self.polyphony_value = int(polyphony)

        self.register_attribute("temperature", 1.0)
        self.register_attribute("seed", -1)
        self.register_attribute("polyphony", int(polyphony))
        self.register_attribute("threshold", -24.0)
        self.register_attribute("listen", self.length)

        knob_labels = [f"(signal) knob {i + 1}: {self.macro_labels[i]}" for i in range(self.n_macros)]
        latent_labels = [f"(signal) latent {i}" for i in range(self.latent_dim)]
        self.register_method("sample", 1 + self.n_macros, 1, 1, 1,
                             input_labels=["(signal) trigger: rising edge plays, value = gain"] + knob_labels,
                             output_labels=["(signal) audio"])
        self.register_method("decode", 1 + self.latent_dim, 1, 1, 1,
                             input_labels=["(signal) trigger: rising edge plays, value = gain"] + latent_labels,
                             output_labels=["(signal) audio"])
        self.register_method("encode", 1, 1, 1 + self.latent_dim, 1,
                             input_labels=["(signal) audio with hits"],
                             output_labels=["(signal) trigger pulse at each encoded hit"] + latent_labels)
        self.register_method("forward", 1, 1, 1, 1,
                             input_labels=["(signal) audio with hits"], output_labels=["(signal) replaced audio"])
        self._reset_state(0)

    # ----------------------------------------------------------------- attributes
    @torch.jit.export
    def get_temperature(self) -> float:
        return self.temperature_value

    @torch.jit.export
    def set_temperature(self, value: float) -> int:
        """0 when accepted; -1 for a negative, infinite or NaN temperature (kept as it was)."""
        if not (value >= 0.0 and value < 1e6):
            return -1
        self.temperature_value = value
        return 0

    @torch.jit.export
    def get_seed(self) -> int:
        return self.seed_value

    @torch.jit.export
    def set_seed(self, value: int) -> int:
        """-1 = a new draw per hit; 0..2**31-1 = the same draw at every hit."""
        if value < -1 or value > 2147483647:
            return -1
        self.seed_value = value
        return 0

    @torch.jit.export
    def get_polyphony(self) -> int:
        return self.polyphony_value

    @torch.jit.export
    def set_polyphony(self, value: int) -> int:
        if self.voices.set_polyphony(value) != 0:
            return -1
        self.polyphony_value = value
        return 0

    @torch.jit.export
    def get_threshold(self) -> float:
        return self.threshold_value

    @torch.jit.export
    def set_threshold(self, value: float) -> int:
        """Encoder hit threshold in dBFS, -120..0."""
        if not (value >= -120.0 and value <= 0.0):
            return -1
        self.threshold_value = value
        return 0

    @torch.jit.export
    def get_listen(self) -> int:
        return self.listen_value

    @torch.jit.export
    def set_listen(self, value: int) -> int:
        """Samples (at the host rate) the encoder listens to after a hit, 1..one-shot length."""
        if value < 1 or value > self.host_length:
            return -1
        self.listen_value = value
        return 0

    def _fade_samples(self, rate: int) -> int:
        return max(1, int(round(self.steal_fade_s * rate)))

    @torch.jit.export
    def set_sample_rate(self, sample_rate: int) -> int:
        """The host's rate (nn~ calls this after loading); 0 = accepted, -1 = out of 1 kHz..384 kHz.

        Silences every voice; a `listen` that was the whole one-shot stays the whole one-shot.
        """
        if sample_rate < 1000 or sample_rate > 384000:
            return -1
        whole = self.listen_value == self.host_length
        self.host_rate = sample_rate
        self.host_length = int(round(self.length * sample_rate / self.sample_rate))
        self.voices.set_length(self.host_length)
        self.voices.set_fade(self._fade_samples(sample_rate))
        if whole or self.listen_value > self.host_length:
            self.listen_value = self.host_length
        self._reset_state(0)
        return 0

    @torch.jit.export
    def get_sample_rate(self) -> int:
        return self.host_rate

    def _to_rate(self, audio: Tensor, size: int) -> Tensor:
        """``[H, T]`` -> ``[H, size]``: linear interpolation, anti-aliased when shrinking."""
        if audio.size(1) == size:
            return audio
        y = torch.nn.functional.interpolate(audio[:, None, None, :], size=[1, size], mode="bilinear",
                                            align_corners=False, antialias=True)
        return y[:, 0, 0, :]

    # ----------------------------------------------------------------- host methods
    @torch.jit.export
    def get_info(self) -> List[int]:
        """[model sample rate, length, latent_dim, n_macros, n_pads]."""
        return [self.sample_rate, self.length, self.latent_dim, self.n_macros, int(self.pad_latents.size(0))]

    @torch.jit.export
    def get_macro_labels(self) -> List[str]:
        return self.macro_labels

    @torch.jit.export
    def get_pad_classes(self) -> List[str]:
        return self.pad_classes

    @torch.jit.export
    def decode_latent(self, z: Tensor) -> Tensor:
        """``z [B, D]`` -> audio ``[B, 1, length]``."""
        return self.model.render(z)

    @torch.jit.export
    def base_to_latent(self, u: Tensor) -> Tensor:
        """Prior base point ``u [B, D]`` -> latent ``z [B, D]``."""
        return self.model.base_to_latent(u)

    @torch.jit.export
    def latent_to_base(self, z: Tensor) -> Tensor:
        """Latent ``z [B, D]`` -> prior base point ``u [B, D]``."""
        return self.model.latent_to_base(z)

    @torch.jit.export
    def embed(self, x: Tensor) -> Tensor:
        """One-shots ``x [B, 1, length]`` -> latents ``[B, D]`` (posterior mode)."""
        return self.model.embed(x)

    @torch.jit.export
    def prior_base(self, keys: Tensor, counters: Tensor) -> Tensor:
        """The base points ``[H, D]`` of hits ``counters [H]`` under ``keys [H]`` (the seed),
        at the current temperature, before the knobs move them."""
        eps = gaussian(keys, counters, self.latent_dim)
        if self.base_points.size(0) > 0:
            index = uniform_index(keys, counters, self.base_points.size(0))
            return kernel_point(self.base_points, self.base_spread[0], index, eps,
                                self.temperature_value * self.kernel_bandwidth)
        return marginal_base(self.temperature_value * eps, self.base_quantiles, self.base_mixing)

    @torch.jit.export
    def knob_latent(self, u: Tensor, knobs: Tensor) -> Tensor:
        """What ``sample`` plays: base points ``u [H, D]``, ``knobs [H, K]`` -> ``z [H, D]``."""
        u = u + torch.matmul(knobs * self.macro_std, self.macro_directions)
        return self.model.base_to_latent(u)

    # ----------------------------------------------------------------- state
    @torch.jit.export
    def reset(self) -> None:
        """Silence everything and forget triggers and the encoder's state."""
        self._reset_state(0)

    def _reset_state(self, batch: int) -> None:
        self.voices.reset(batch)
        self.last_latent = torch.zeros(batch, self.latent_dim)
        self.enc_armed = torch.ones(batch, dtype=torch.bool)
        self.enc_fill = torch.full((batch,), -1, dtype=torch.long)
        self.enc_buffer = torch.zeros(batch, self.host_length)
        self.enc_latent = torch.zeros(batch, self.latent_dim)

    def _ensure_batch(self, batch: int) -> None:
        if self.last_latent.size(0) != batch:
            self._reset_state(batch)

    def _play(self, x: Tensor, rows: Tensor, samples: Tensor, gains: Tensor, z: Tensor) -> Tensor:
        if rows.size(0) > 0:
            audio = self._to_rate(self.model.render(z)[:, 0], self.host_length)
            self.last_latent[rows] = z
        else:
            audio = torch.zeros(0, self.host_length, device=x.device)
        return self.voices.play(rows, samples, gains, audio, x.size(2)).unsqueeze(1)

    # ----------------------------------------------------------------- nn~ methods
    @torch.jit.export
    def sample(self, x: Tensor) -> Tensor:
        """``[B, 1 + K, N]`` (trigger, knobs) -> ``[B, 1, N]`` audio."""
        self._ensure_batch(x.size(0))
        rows, samples, gains = self.voices.find_hits(x[:, 0])
        hits = rows.size(0)
        if hits == 0:
            # Most blocks start no voice: skip drawing latents, only mix what is sounding.
            return self.voices.play(rows, samples, gains, x.new_zeros(0, 0), x.size(2)).unsqueeze(1)
        knobs = x.permute(0, 2, 1)[rows, samples][:, 1:]
        if self.seed_value >= 0:
            keys = torch.full((hits,), self.seed_value, dtype=torch.long)
            counters = torch.zeros(hits, dtype=torch.long)
        else:
            keys = torch.full((hits,), 0x5EED, dtype=torch.long)  # key of the seed == -1 stream
            counters = self.draws + torch.arange(hits, dtype=torch.long)
            self.draws += hits
        z = self.knob_latent(self.prior_base(keys, counters).to(x.device), knobs)
        return self._play(x, rows, samples, gains, z)

    @torch.jit.export
    def decode(self, x: Tensor) -> Tensor:
        """``[B, 1 + D, N]`` (trigger, latent) -> ``[B, 1, N]`` audio."""
        self._ensure_batch(x.size(0))
        rows, samples, gains = self.voices.find_hits(x[:, 0])
        z = x.permute(0, 2, 1)[rows, samples][:, 1:]
        return self._play(x, rows, samples, gains, z)

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        """``[B, 1, N]`` audio -> ``[B, 1 + D, N]`` (trigger pulse, held latent)."""
        batch, n = x.size(0), x.size(2)
        self._ensure_batch(batch)
        level = x[:, 0].abs()
        on = 10.0 ** (self.threshold_value / 20.0)
        off = on * 0.5  # 6 dB of hysteresis
        listen = self.listen_value
        done_rows: List[int] = []
        done_at: List[int] = []
        windows: List[Tensor] = []
        for b in range(batch):
            t = 0
            while t < n:
                fill = int(self.enc_fill[b])
                if fill >= 0:
                    # max(0, .): `listen` may have been lowered below the samples already heard.
                    take = max(0, min(listen - fill, n - t))
                    self.enc_buffer[b, fill:fill + take] = x[b, 0, t:t + take]
                    fill += take
                    t += take
                    if fill >= listen:
                        done_rows.append(b)
                        done_at.append(max(t - 1, 0))
                        windows.append(self.enc_buffer[b].clone())
                        fill = -1
                        self.enc_armed[b] = False
                    self.enc_fill[b] = fill
                elif bool(self.enc_armed[b]):
                    found = torch.nonzero(level[b, t:] >= on)
                    if found.size(0) == 0:
                        t = n
                    else:
                        t += int(found[0, 0])
                        self.enc_fill[b] = 0
                        self.enc_buffer[b].zero_()
                else:
                    found = torch.nonzero(level[b, t:] < off)
                    if found.size(0) == 0:
                        t = n
                    else:
                        t += int(found[0, 0])
                        self.enc_armed[b] = True
        out = torch.zeros(batch, 1 + self.latent_dim, n, device=x.device)
        out[:, 1:] = self.enc_latent.unsqueeze(2)
        if len(windows) > 0:
            shots = self._to_rate(torch.stack(windows), self.length).unsqueeze(1)
            z = self.model.embed(shots)
            for i in range(len(windows)):
                b, p = done_rows[i], done_at[i]
                out[b, 1:, p:] = z[i].unsqueeze(1)
                # A one-sample pulse at the window's peak: a rising edge for decode.
                out[b, 0, p] = torch.clamp(windows[i].abs().max(), min=1e-4)
                self.enc_latent[b] = z[i]
        return out

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 1, N]`` audio -> ``[B, 1, N]``: each detected hit replaced by its decoding."""
        return self.decode(self.encode(x))
