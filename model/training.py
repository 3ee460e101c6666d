"""The LightningModule that trains the flow-VAE, in two stages.

Stage 1 (generator steps < ``cfg.loss.adversarial_start``): multi-scale STFT
reconstruction + beta * KL with free bits. Stage 2 adds the discriminators
(``discriminator_loss`` from ``losses.py``), the generator's adversarial loss and feature
matching. Optimisation is manual (two AdamW optimisers), so Lightning's
``global_step`` counts both optimisers' steps; flowshot keeps its own counter of
generator steps (``self.gen_step``), stores it in every checkpoint and uses it for
``--max-steps``, validation, checkpoints and logs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from flowshot.errors import FlowshotError
from flowshot.model.checkpoint import flowshot_meta
from flowshot.model.config import FlowshotConfig
from flowshot.model.losses import (band_edge_distance, body_pitch_distance, dc_distance, flatness_distance,
                                   low_band_wave_distance, wave_flatness)
from flowshot.model.pitch import pitch_distance

# A latent dimension counts as "active" when the posterior moves it away from the prior
# by more than this many nats on average; below it the decoder cannot be using it.
ACTIVE_UNIT_NATS = 0.01
# Consecutive non-finite steps tolerated (skipped) before the run is stopped.
MAX_BAD_STEPS = 3
# Training scalars go to the logger every this many generator steps.
LOG_EVERY = 10
# Sounds per row in the validation grid and WAVs.
N_PREVIEW = 4
# Step checkpoints kept beside last.ckpt (a small-preset checkpoint is ~50 MB).
KEEP_STEP_CHECKPOINTS = 5
# Validation looks at no more than this many held-out sounds (keeps it a few seconds).
MAX_VAL_EXAMPLES = 128


class SpikeWatch:
    """Notices a reconstruction loss that jumps far above its recent level.

    A run that diverges on a CPU does not go to NaN at once: its loss spikes a thousand
    times over for single steps while the posterior means run off (docs/evaluation.md),
    and without a word the run goes on for an hour to a useless checkpoint.

    Args:
        factor: a loss above ``factor`` times the running average is a spike.
        warmup: steps before any judgement (the loss falls fast at first).
        quiet: steps between two warnings.
    """

    def __init__(self, factor: float = 20.0, warmup: int = 50, quiet: int = 200) -> None:
        self.factor, self.warmup, self.quiet = float(factor), int(warmup), int(quiet)
        self.average: float | None = None
        self.spikes = 0
        self._warned_at = -quiet

    def update(self, value: float, step: int) -> str | None:
        """Feed one step's loss; returns a one-line warning when it should be shown."""
        if self.average is not None and step >= self.warmup and value > self.factor * self.average:
            self.spikes += 1  # kept out of the average, which stays the loss of a sound run
            if step - self._warned_at < self.quiet:
                return None
            self._warned_at = step
            return (f"flowshot train: reconstruction loss {value:.3g} at step {step} is "
                    f"{value / self.average:.0f}x its recent average ({self.spikes} such spikes so far); "
                    "if they recur the run is diverging: restart it with another --seed "
                    "or a longer warm-up (--set train.lr_warmup_steps=1000)")
        self.average = value if self.average is None else 0.98 * self.average + 0.02 * value
        return None


class FlowshotModule(L.LightningModule):
    """Flow-VAE + discriminators with manual two-optimiser training.

    Args:
        cfg: the full config (stored in every checkpoint as plain data).
        max_steps: generator steps after which training stops.
        run_dir: where samples, checkpoints and ``validation.jsonl`` go (None: write nothing).
        val_audio: held-out sounds [V, L] for validation (None: no validation).
        sources: data sources (recorded in checkpoints).
        classes: class labels of the training data (recorded in checkpoints).
        stats_examples: (ExampleSet, training indices) for the latent statistics (macro
            knobs, pads) computed at the last step and stored in the final checkpoint, so
            export and the real-time host need no data; None leaves them out.
        max_minutes: wall-clock budget of this run; when it is spent the current step is
            treated as the last one (validation, statistics, checkpoint). None: no limit.
    """

    def __init__(
        self,
        cfg: FlowshotConfig,
        max_steps: int | None = None,
        run_dir: str | Path | None = None,
        val_audio: Tensor | None = None,
        sources: list[str] | None = None,
        classes: list[str] | None = None,
        stats_examples: tuple[Any, list[int]] | None = None,
        max_minutes: float | None = None,
    ) -> None:
        super().__init__()
        from flowshot.model.discriminators import Discriminators
        from flowshot.model.losses import MultiScaleSTFTLoss, stft_loss_from_config
        from flowshot.model.vae import FlowVAE

        self.automatic_optimization = False
        self.cfg = cfg
        self.max_steps = int(max_steps if max_steps is not None else cfg.train.max_steps)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.val_audio = val_audio
        self.sources = list(sources or [])
        self.classes = sorted(set(classes or []))
        self.model = FlowVAE(cfg)
        self.discriminators = Discriminators(cfg)
        self.stft_loss = stft_loss_from_config(cfg)
        # The body oscillators' tuning term: transport only, under its own cut-off.
        self.body_transport = (MultiScaleSTFTLoss(cfg.loss.stft_scales, 0.0, 0.0, ot_weight=1.0,
                                                  ot_max_hz=cfg.loss.body_transport_max_hz,
                                                  sample_rate=cfg.audio.sample_rate)
                               if cfg.loss.body_transport_weight > 0 else None)
        self.stats_examples = stats_examples
        self.latent_stats: dict[str, Any] | None = None
        self.max_minutes = max_minutes
        self._started_at = time.monotonic()
        self.gen_step = 0
        self.bad_steps = 0
        self.spike_watch = SpikeWatch()
        self._last_logged: dict[str, float] = {}

    # ----------------------------------------------------------------- schedules
    def beta(self) -> float:
        """KL weight at the current step: linear warm-up from 0 to ``cfg.loss.beta``."""
        warm = self.cfg.loss.beta_warmup_steps
        ramp = 1.0 if warm <= 0 else min(1.0, self.gen_step / warm)
        return self.cfg.loss.beta * ramp

    def adversarial(self) -> bool:
        return self.gen_step >= self.cfg.loss.adversarial_start

    def configure_optimizers(self) -> Any:
        t = self.cfg.train
        opt_g = torch.optim.AdamW(self.model.parameters(), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
        opt_d = torch.optim.AdamW(
            self.discriminators.parameters(), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay
        )
        if t.lr_decay == 1.0:
            return [opt_g, opt_d]
        # Stepped by hand once per generator (resp. discriminator) step, see training_step.
        sch_g = torch.optim.lr_scheduler.ExponentialLR(opt_g, gamma=t.lr_decay)
        sch_d = torch.optim.lr_scheduler.ExponentialLR(opt_d, gamma=t.lr_decay)
        return [opt_g, opt_d], [sch_g, sch_d]

    # ------------------------------------------------------------------ losses
    def kl_loss(self, kl: Tensor) -> Tensor:
        """Batch KL with free nats: ``max(mean KL, free_bits * D)``.

        ``kl`` [B] is the Monte-Carlo KL (log q - log p, flows included). Below
        ``free_bits * D`` nats in total it exerts no pull at all, so the posterior keeps
        that much information whatever beta is. The budget is on the total, not per
        dimension: with flows the KL does not split into dimensions, and a per-dimension
        correction computed on the base posterior cancels only the Gaussian part of the
        gradient; the flows' part then drags the posterior to collapse. The per-dimension
        KL stays a diagnostic (active units).
        """
        return torch.clamp(kl.mean(), min=self.cfg.loss.free_bits * self.model.latent_dim)

    def _finite_everywhere(self, value: Tensor) -> bool:
        """True when ``value`` is finite on every rank (all ranks then skip or step together)."""
        ok = bool(torch.isfinite(value).all().item())
        if self.trainer is not None and self.trainer.world_size > 1:
            ok = bool(self.trainer.strategy.reduce_boolean_decision(ok, all=True))
        return ok

    def _clip(self, opt: Any) -> None:
        if self.cfg.train.grad_clip > 0:
            self.clip_gradients(opt, gradient_clip_val=self.cfg.train.grad_clip, gradient_clip_algorithm="norm")

    def _warm_up(self, opt: Any) -> None:
        """Scale the generator's learning rate during ``train.lr_warmup_steps``.

        Written as the full value at every warm-up step (the decay included), so an
        ``ExponentialLR`` that multiplies the current rate carries on from the right one
        and a resumed run lands on the same rate as an unbroken one.
        """
        t = self.cfg.train
        if t.lr_warmup_steps <= 0 or self.gen_step >= t.lr_warmup_steps:
            return
        lr = t.lr * (self.gen_step + 1) / t.lr_warmup_steps * t.lr_decay**self.gen_step
        for group in opt.param_groups:
            group["lr"] = lr

    def _bad_step(self, what: str) -> None:
        self.bad_steps += 1
        if self.bad_steps >= MAX_BAD_STEPS:
            last = self.run_dir / "last.ckpt" if self.run_dir else "the last checkpoint"
            raise FlowshotError(
                f"training diverged: {what} is not finite at step {self.gen_step} for {self.bad_steps} "
                f"steps in a row; {last} is untouched - resume from it with a lower learning rate "
                "(--set train.lr=...) or stronger clipping (--set train.grad_clip=...)"
            )

    # ---------------------------------------------------------------- training
    def disc_window(self, x: Tensor, recon: Tensor) -> tuple[Tensor, Tensor]:
        """The same window of real [B,1,L] and generated audio for the discriminators.

        ``cfg.loss.disc_crop`` samples (0 = all): the discriminators cost most of a stage-2
        step on a CPU, and half a one-shot is mostly tail. Half of the windows start at
        the onset, because the attack is where a drum hit is made or lost.
        """
        crop = int(self.cfg.loss.disc_crop)
        length = x.shape[-1]
        if crop <= 0 or crop >= length:
            return x, recon
        start = 0
        if float(torch.rand(())) >= 0.5:
            start = int(torch.randint(0, length - crop + 1, ()))
        return x[..., start: start + crop], recon[..., start: start + crop]

    def body_level(self) -> float:
        """The body oscillators' output level in training at this step
        (``train.body_fade_in_start`` and ``body_fade_in_steps``)."""
        t = self.cfg.train
        if t.body_fade_in_steps <= 0:
            return 1.0
        return min(1.0, max(0.0, (self.gen_step - t.body_fade_in_start) / t.body_fade_in_steps))

    def body_pitch_term(self, z: Tensor, x: Tensor) -> Tensor:
        """The first body oscillator's resting pitch from z [B,D] against each target's
        own [B,1,L] (``losses.body_pitch_distance``); its gradient reaches z only with
        ``loss.body_pitch_to_encoder``."""
        z = z if self.cfg.loss.body_pitch_to_encoder else z.detach()
        return body_pitch_distance(self.model.bodies.parameters_of(z)[:, 0, 0], x, self.cfg.audio.sample_rate,
                                   self.cfg.loss.body_pitch_max_hz)

    def voice_pitch_term(self, z: Tensor, x: Tensor) -> Tensor:
        """The harmonic voice's pitch per frame from z [B,D] against each target's own
        [B,1,L] on its voiced frames (``pitch.pitch_distance``); the gradient reaches z."""
        voice, m = self.model.voice, self.cfg.model
        return pitch_distance(voice.frame_pitch(z), x, self.cfg.audio.sample_rate, voice.hop,
                              m.voice_min_hz, m.voice_max_hz)

    def _bodies_live(self, recon: Tensor, z: Tensor) -> Tensor:
        """``recon`` [B,1,L] with only the body oscillators' head live: z and the rest of
        the sound held fixed, so a term on it tunes the oscillators and moves nothing
        else. Its value is ``recon``'s."""
        body = self.model.bodies(z.detach())  # pitch live, unlike in ``recon``
        return recon.detach() - body.detach() + body

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        """One generator step (and, in stage 2, one discriminator step before it).

        Args:
            batch: audio [B, 1, L], or [B, 2, L] from augmentation: what the encoder hears,
                then the reconstruction target (``OneShotDataset``).
        """
        batch = batch if isinstance(batch, Tensor) else batch[0]
        heard, x = batch[:, :1], batch[:, -1:]
        opts = self.optimizers()
        opt_g, opt_d = opts if isinstance(opts, (list, tuple)) else (opts, None)
        fade = self.cfg.train.wave_fade_in_steps
        if fade > 0:
            self.model.decoder.upper_wave_gain = min(1.0, self.gen_step / fade)
        self.model.bodies.level.fill_(self.body_level())
        out = self.model(heard)
        recon = out["recon"]
        rec_loss = self.stft_loss(recon, x)
        kl_loss = self.kl_loss(out["kl"])
        beta = self.beta()
        # The prior flow fits the latents by maximum likelihood at every step, also while
        # the KL sits below its free nats and passes no gradient: prior samples must land
        # where the posteriors are. z is detached: this term moves the prior, not the encoder.
        prior_nll = -self.model.prior_log_prob(out["z"].detach()).mean()
        g_loss = rec_loss + beta * kl_loss + self.cfg.loss.beta * prior_nll
        logs: dict[str, float] = {"train/prior_nll": float(prior_nll.detach())}
        loss, sub_bands = self.cfg.loss, self.model.pqmf.analysis
        wave_samples = int(round(loss.wave_ms * 1e-3 * self.cfg.audio.sample_rate))
        # The optional reconstruction terms, each computed only when its weight is on.
        optional = (
            ("dc", loss.dc_weight, lambda: dc_distance(recon, x)),
            ("edge", loss.edge_weight, lambda: band_edge_distance(sub_bands(recon), sub_bands(x), loss.edge_window)),
            ("flatness", loss.flatness_weight, lambda: wave_flatness(out["wave"], loss.flatness_fft)),
            ("flatness_match", loss.flatness_match_weight,
             lambda: flatness_distance(sub_bands(recon), sub_bands(x), loss.flatness_fft)),
            ("body_transport", loss.body_transport_weight, lambda: self.body_transport.transport(
                self._bodies_live(recon, out["z"]), x)),
            ("body_pitch", loss.body_pitch_weight, lambda: self.body_pitch_term(out["z"], x)),
            ("voice_pitch", loss.voice_pitch_weight if self.model.voice.count > 0 else 0.0,
             lambda: self.voice_pitch_term(out["z"], x)),
            ("wave", loss.wave_weight,
             lambda: low_band_wave_distance(recon, x, loss.wave_lowpass_hz, self.cfg.audio.sample_rate, wave_samples,
                                            highpass_hz=loss.wave_highpass_hz)),
        )
        for name, weight, term in optional:
            if weight > 0:
                value = term()
                g_loss = g_loss + weight * value
                logs[f"train/{name}"] = float(value.detach())
        adversarial = self.adversarial() and len(self.discriminators.families) > 0

        if adversarial:
            from flowshot.model.losses import discriminator_loss, feature_matching_loss, generator_adv_loss

            real, fake = self.disc_window(x, recon)
            # Discriminator on a detached reconstruction: no gradient reaches the VAE here.
            d_loss = discriminator_loss(self.discriminators(real), self.discriminators(fake.detach()))
            if self._finite_everywhere(d_loss):
                opt_d.zero_grad(set_to_none=True)
                self.manual_backward(d_loss)
                self._clip(opt_d)
                opt_d.step()
                logs["train/disc"] = float(d_loss.detach())
            else:
                self._bad_step("the discriminator loss")
                return
            # Real features are targets for feature matching, not something to train.
            with torch.no_grad():
                real_outs = self.discriminators(real)
            fake_outs = self.discriminators(fake)
            adv = generator_adv_loss(fake_outs)
            fm = feature_matching_loss(real_outs, fake_outs)
            g_loss = g_loss + self.cfg.loss.adv_weight * adv + self.cfg.loss.feature_matching_weight * fm
            logs["train/adv"] = float(adv.detach())
            logs["train/feature_matching"] = float(fm.detach())

        if not self._finite_everywhere(g_loss):
            self._bad_step("the generator loss")
            return
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        self._clip(opt_g)
        self._warm_up(opt_g)
        opt_g.step()
        if self.cfg.train.lr_decay != 1.0:
            for sch in self.lr_schedulers():
                sch.step()
        self.bad_steps = 0
        self.gen_step += 1

        kl_per_dim = out["kl_per_dim"].detach()
        logs.update(
            {
                "train/loss": float(g_loss.detach()),
                "train/recon": float(rec_loss.detach()),
                "train/kl": float(out["kl"].detach().mean()),
                "train/beta": beta,
                "train/active_units": float((kl_per_dim > ACTIVE_UNIT_NATS).sum()),
                "train/lr": float(opt_g.param_groups[0]["lr"]),
                "train/stage": 2.0 if adversarial else 1.0,
            }
        )
        self._last_logged = logs
        warning = self.spike_watch.update(logs["train/recon"], self.gen_step)
        if warning and self.trainer.is_global_zero:
            print(warning, flush=True)
        # Progress bar only; the logger gets the same values with the generator step below.
        self.log("step", float(self.gen_step), prog_bar=True, logger=False, batch_size=x.shape[0])
        self.log("recon", logs["train/recon"], prog_bar=True, logger=False, batch_size=x.shape[0])
        if self.gen_step % LOG_EVERY == 0 or self.gen_step == 1:
            self._log_metrics(logs)

    def _log_metrics(self, metrics: dict[str, float]) -> None:
        if self.logger is not None and self.trainer.is_global_zero:
            self.logger.log_metrics(metrics, step=self.gen_step)

    def _last_step(self, step: int) -> bool:
        if step >= self.max_steps:
            return True
        if self.max_minutes is None:
            return False
        out_of_time = time.monotonic() - self._started_at >= 60.0 * self.max_minutes
        # Ranks' clocks differ: rank 0 decides so every rank stops at the same step.
        return bool(self.trainer.strategy.broadcast(out_of_time, src=0))

    def on_train_start(self) -> None:
        self._started_at = time.monotonic()
        if self.gen_step == 0:
            self.run_validation()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = self.gen_step
        if step == getattr(self, "_handled_step", -1):
            return  # a skipped (non-finite) step: nothing new to validate or save
        self._handled_step = step
        last = self._last_step(step)
        val_every = self.cfg.train.val_every
        if val_every > 0 and (step % val_every == 0 or last):
            self.run_validation()
        if last:
            self.latent_stats = self.compute_latent_stats()
        ckpt_every = self.cfg.train.ckpt_every
        if self.run_dir is not None and (last or (ckpt_every > 0 and step % ckpt_every == 0)):
            # Every rank calls save_checkpoint (it synchronises); only rank 0 writes.
            self.trainer.save_checkpoint(self.run_dir / f"step-{step:07d}.ckpt", weights_only=False)
            self.trainer.save_checkpoint(self.run_dir / "last.ckpt", weights_only=False)
            if self.trainer.is_global_zero:
                prune_step_checkpoints(self.run_dir, KEEP_STEP_CHECKPOINTS)
        if last:
            self.trainer.should_stop = True

    # -------------------------------------------------------------- checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["flowshot"] = flowshot_meta(
            self.cfg, self.sources, self.classes, self.gen_step, latent_stats=self.latent_stats
        )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.get("flowshot") or {}
        self.gen_step = int(meta.get("step", 0))
        self._handled_step = self.gen_step
        self.latent_stats = None  # they describe the weights at that step; recomputed at the end

    def compute_latent_stats(self) -> dict[str, Any] | None:
        """Macro knobs and pads of the current model on the training sounds (None if impossible).

        Every rank computes the same thing (same data, no collectives); only rank 0 saves.
        """
        if self.stats_examples is None:
            return None
        from flowshot.model.latents import compute_latent_stats

        examples, indices = self.stats_examples
        try:
            stats = compute_latent_stats(
                self.model, examples, indices, n_macros=8, n_pads=16, progress=False,
                sample_rate=self.cfg.audio.sample_rate,
            )
        except FlowshotError as err:
            if self.trainer.is_global_zero:
                print(f"flowshot train: no latent statistics in the checkpoint ({err})")
            return None
        return stats

    # -------------------------------------------------------------- validation
    @torch.no_grad()
    def run_validation(self) -> float | None:
        """Posterior-mode reconstruction loss on the held-out sounds; previews on rank 0.

        Every rank computes the same number on the same data (no collective calls), and
        only rank 0 logs it and writes ``RUN/samples/step-XXXXXXX/`` and ``validation.jsonl``.
        """
        if self.val_audio is None or len(self.val_audio) == 0:
            return None
        was_training = self.model.training
        self.model.eval()
        try:
            audio = self.val_audio[:MAX_VAL_EXAMPLES].to(self.device)
            bs = max(1, self.cfg.train.batch_size)
            total, count, recons, noise_db, flatness = 0.0, 0, [], [], []
            bands = self.cfg.model.pqmf_bands
            score_flatness = bands > 1 and self.cfg.loss.flatness_fft <= self.cfg.audio.length // bands
            for start in range(0, len(audio), bs):
                x = audio[start : start + bs].unsqueeze(1)
                z = self.model.embed(x)
                # One decoder pass for the sound, the noise share and the flatness alike.
                wave, noise = self.model.decoder.parts(z)
                y = self.model.synthesize(self.model.decoder.mix(wave, noise), z)
                total += float(self.stft_loss(y, x)) * len(x)
                count += len(x)
                noise_db.append(self.model.decoder.part_ratio_db(wave, noise).float().cpu())
                if score_flatness:
                    flatness.append(float(wave_flatness(wave, self.cfg.loss.flatness_fft)) * len(x))
                if sum(len(r) for r in recons) < N_PREVIEW:
                    recons.append(y[:, 0].float().cpu())
            val = total / count
            # Median over the held-out sounds, per sub-band and overall: a noise branch
            # that dies (docs/evaluation.md) shows here long before anyone listens.
            noise_median = torch.cat(noise_db).median(dim=0).values
            record = {"step": self.gen_step, "val/recon": val, "val/noise_part_db": round(float(noise_median[-1]), 2),
                      "val/noise_part_db_bands": [round(float(v), 1) for v in noise_median[:-1]], **self._last_logged}
            if flatness:
                # The deterministic part's spectral flatness in the upper sub-bands (0 lines,
                # 0.56 white noise; the held-out drums themselves: 0.47), with or without its term.
                record["val/wave_flatness"] = round(sum(flatness) / count, 4)
            if self.trainer.is_global_zero:
                self._log_metrics({"val/recon": val, "val/noise_part_db": float(noise_median[-1])})
                if self.run_dir is not None:
                    gen = torch.Generator(device="cpu").manual_seed(0)
                    z = self.model.sample(N_PREVIEW, temperature=1.0, generator=gen).to(self.device)
                    prior = self.model.decode(z)[:, 0].float().cpu()
                    real = audio[:N_PREVIEW].float().cpu()
                    rec = torch.cat(recons)[:N_PREVIEW]
                    write_previews(
                        self.run_dir / "samples" / f"step-{self.gen_step:07d}",
                        {"prior": prior, "real": real, "recon": rec},
                        self.cfg.audio.sample_rate,
                        title=f"step {self.gen_step}  val/recon {val:.3f}",
                    )
                    with open(self.run_dir / "validation.jsonl", "a") as fh:
                        fh.write(json.dumps(record) + "\n")
            return val
        finally:
            self.model.train(was_training)


def write_previews(folder: Path, rows: dict[str, Tensor], sample_rate: int, title: str = "") -> None:
    """WAVs ``<label>-NN.wav`` for each row and one ``grid.png`` (rows in the given order).

    Args:
        rows: label -> audio [N, L].
    """
    from flowshot.model.audio_io import write_wav
    from flowshot.model.plots import spectrogram_grid

    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, list[np.ndarray]] = {}
    for label, audio in rows.items():
        arrays[label] = [a.numpy().astype(np.float32) for a in audio]
        for i, a in enumerate(arrays[label]):
            write_wav(folder / f"{label}-{i:02d}.wav", a, sample_rate)
    spectrogram_grid(arrays, sample_rate, folder / "grid.png", title=title)


def prune_step_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest ``step-XXXXXXX.ckpt`` files (names sort by step)."""
    for old in sorted(run_dir.glob("step-*.ckpt"))[:-keep]:
        old.unlink(missing_ok=True)
