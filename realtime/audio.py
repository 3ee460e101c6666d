"""The sound-card side: a sounddevice output stream whose callback only mixes engine voices."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from flowshot.errors import FlowshotError
from flowshot.realtime.engine import MAX_BLOCK, Engine


def _sd():
    try:
        import sounddevice as sd
    except OSError as err:  # PortAudio library missing
        raise FlowshotError(f"sounddevice cannot load PortAudio ({err}); install libportaudio2") from None
    return sd


def output_devices() -> list[str]:
    """Names of the output devices PortAudio sees, as 'index: name (host API)'."""
    sd = _sd()
    apis = sd.query_hostapis()
    return [f"{i}: {d['name']} ({apis[d['hostapi']]['name']})"
            for i, d in enumerate(sd.query_devices()) if d["max_output_channels"] > 0]


def resolve_output(device: str | int | None, samplerate: int | None) -> tuple[int, int, int]:
    """Find the output device and the rate to run it at.

    Args:
        device: index, (part of a) name, or None for the default output.
        samplerate: wanted rate, or None for the device's default rate.
    Returns:
        (device index, sample rate, output channels used: 1 or 2).
    """
    sd = _sd()
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    try:
        info = sd.query_devices(device, "output")
    except (ValueError, sd.PortAudioError):
        listing = "; ".join(output_devices()) or "none (is a JACK server or sound card available?)"
        want = "the default output" if device is None else f"--device {device!r}"
        raise FlowshotError(f"no audio output for {want}; output devices: {listing}") from None
    rate = int(samplerate or info["default_samplerate"])
    channels = min(2, int(info["max_output_channels"]))
    try:
        sd.check_output_settings(device=info["index"], samplerate=rate, channels=channels, dtype="float32")
    except Exception as err:
        raise FlowshotError(f"device {info['name']!r} refuses {rate} Hz ({err}); pass another --samplerate") from None
    return int(info["index"]), rate, channels


class AudioOutput:
    """Runs ``engine.process`` in the sound card's callback and measures it.

    Args:
        engine: the engine to play (built with ``output_rate`` = this stream's rate).
        device: device index from ``resolve_output``.
        channels: output channels (the mono mix is copied to each; with the engine's
            split pads and 2 channels, the first carries the other pads, the second them).
        blocksize: frames per callback (0 = the host's natural size, e.g. JACK's period).

    Attributes:
        xruns: callbacks that reported an underflow/overflow in their status flags.
        callbacks: callbacks run so far.
        callback_ms, callback_max_ms: last and worst time spent inside the callback.
        load, load_max: last and worst callback time as a share of the block's duration
            (1.0 = no headroom left).
    """

    def __init__(self, engine: Engine, device: int, channels: int = 2, blocksize: int = 0):
        self.engine = engine
        # Run at the start of every callback, before mixing (a polled MIDI port's ``pump``);
        # they must not block, lock or log.
        self.inputs: list[Callable[[], None]] = []
        self.input_errors = 0
        self.device = device
        self.channels = channels
        self.blocksize = int(blocksize)
        self.xruns = 0
        self.last_status = ""
        self.lost: str | None = None  # why the audio server dropped the stream, once it has
        self.start_late_max = 0  # frames: the latest start of a callback in its cycle (where known)
        self.callbacks = 0
        self.callback_ms = 0.0
        self.callback_max_ms = 0.0
        self.load = 0.0
        self.load_max = 0.0
        self.last_frames = 0
        self._mono = np.zeros(MAX_BLOCK, np.float32)
        self._side = np.zeros(MAX_BLOCK, np.float32)
        self._stream = None

    def _callback(self, outdata: np.ndarray, frames: int, time_info, status) -> None:
        if status:
            self.xruns += 1
            self.last_status = str(status)
        self._block([outdata[:, c] for c in range(outdata.shape[1])], frames)

    def _block(self, outs: list[np.ndarray], frames: int) -> None:
        """Fill one block: run the inputs, mix the voices into ``outs`` (one array a channel)."""
        t0 = time.perf_counter()
        if frames > len(self._mono):  # never happens with sane block sizes; stay correct anyway
            self._mono = np.zeros(frames, np.float32)
            self._side = np.zeros(frames, np.float32)
        mono = self._mono[:frames]
        for pump in self.inputs:
            try:
                pump()
            except Exception:  # an exception here would stop the stream: count it instead
                self.input_errors += 1
        if self.engine.split and len(outs) >= 2:
            side = self._side[:frames]
            self.engine.process(mono, side)
            outs[0][:] = mono
            outs[1][:] = side
        else:  # one channel: the split pads stay in the one mix
            self.engine.process(mono)
            for out in outs:
                out[:] = mono
        dt = time.perf_counter() - t0
        self.callbacks += 1
        self.last_frames = frames
        self.callback_ms = dt * 1e3
        if self.callback_ms > self.callback_max_ms:
            self.callback_max_ms = self.callback_ms
        self.load = dt * self.engine.output_rate / max(frames, 1)
        if self.load > self.load_max:
            self.load_max = self.load

    def add_midi(self, midi: Any) -> None:
        """Poll a MIDI input (its ``pump``) at the start of every callback."""
        self.inputs.append(midi.pump)

    def start(self) -> None:
        sd = _sd()
        try:
            self._stream = sd.OutputStream(
                device=self.device, samplerate=self.engine.output_rate, channels=self.channels,
                dtype="float32", blocksize=self.blocksize, callback=self._callback, latency="low",
            )
            self._stream.start()
        except sd.PortAudioError as err:
            raise FlowshotError(f"cannot open audio device {self.device} ({err}); check --device/--samplerate/--blocksize") from None

    @property
    def latency_frames(self) -> int:
        return int(round((self._stream.latency if self._stream else 0.0) * self.engine.output_rate))

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
