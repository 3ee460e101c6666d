"""The host as a JACK client of its own: audio out and MIDI in, in one process callback.

When a JACK server runs, the host does not go through PortAudio. One client, ``flowshot``,
owns the audio outputs (``flowshot:out_0``, ``flowshot:out_1``) and the MIDI input
(``flowshot:flowshot``), and its one process callback reads the cycle's MIDI events and
then mixes the block. Why:

- RtMidi's JACK input (python-rtmidi 1.5.8, RtMidi 5.0), the host's MIDI port before,
  crashed the host with a segfault on bursts of events in one cycle
  (``benchmarks/midi_burst.py``) and now and then in normal playing; here an event's size
  is checked before its bytes are copied;
- one Python callback a cycle takes the GIL once: PortAudio's client beside a Python MIDI
  client took it twice, which doubled the xruns and dropped most notes of large bursts
  (docs/benchmarks.md, 2026-12-03);
- MIDI and audio in the same cycle: a note starts at its own frame inside the block, so
  every hit sounds exactly one period after its event, without jitter;
- with the C mixer (``realtime/cmix.py``, the default where it was built) that callback is
  C and takes no GIL at all: no other thread of the host can make it late. The Python
  callback (``--mixer python``) took the GIL once a cycle and waited whenever the OSC,
  UI or render threads held it.

Elsewhere (ALSA, CoreAudio, WASAPI) the host uses sounddevice (``audio.AudioOutput``).
"""

from __future__ import annotations

from typing import Any, Callable

from flowshot.errors import FlowshotError
from flowshot.realtime.audio import AudioOutput
from flowshot.realtime.engine import Engine

CLIENT_NAME = "flowshot"


def _jack():
    try:
        import jack
    except (ImportError, OSError) as err:  # the jack package or libjack missing
        raise FlowshotError(f"cannot use JACK ({err}); pip install jack-client and install libjack") from None
    return jack


def server_running() -> bool:
    """True when a JACK server answers (none is started); libjack's messages are kept quiet."""
    try:
        jack = _jack()
    except FlowshotError:
        return False
    jack.set_error_function(lambda message: None)
    jack.set_info_function(lambda message: None)
    try:
        jack.Client("flowshot-check", no_start_server=True).close()
        return True
    except jack.JackError:
        return False
    finally:
        jack.set_error_function(None)
        jack.set_info_function(None)


class JackClient:
    """The host's JACK client, opened before the engine so a bad ``--device`` fails first.

    Args:
        device: None connects the outputs to the physical playback ports; otherwise a name
            (or a unique part of one) of a JACK client or port with audio inputs to feed.
        samplerate: must be JACK's rate when given (a client cannot change it).
    """

    def __init__(self, device: str | None = None, samplerate: int | None = None):
        jack = _jack()
        try:
            self.client = jack.Client(CLIENT_NAME, no_start_server=True)
        except jack.JackError as err:
            raise FlowshotError(f"cannot open a JACK client ({err}); is the JACK server still running?") from None
        self.rate = int(self.client.samplerate)
        if samplerate and int(samplerate) != self.rate:
            self.client.close()
            raise FlowshotError(f"--samplerate {samplerate}: the JACK server runs at {self.rate} Hz; "
                                "leave --samplerate out or restart JACK at that rate")
        if device is None:
            self.playback = [p.name for p in self.client.get_ports(is_audio=True, is_input=True, is_physical=True)][:2]
        else:
            sinks = [p.name for p in self.client.get_ports(is_audio=True, is_input=True)
                     if not p.name.startswith(self.client.name + ":")]
            self.playback = [n for n in sinks if n.split(":")[0] == device] or [n for n in sinks if device.lower() in n.lower()]
            if not self.playback:
                clients = sorted({n.split(":")[0] for n in sinks})
                self.client.close()
                raise FlowshotError(f"no audio output for --device {device!r}; output devices: "
                                    f"{', '.join(clients) or 'none'} (JACK clients with audio inputs)")
            self.playback = self.playback[:2]
        self.name = device or "system"

    def midi_sources(self) -> list[str]:
        return [p.name for p in self.client.get_ports(is_midi=True, is_output=True)
                if not p.name.startswith(self.client.name + ":")]


class _Counter:
    """An ``AudioOutput`` counter that the C mixer keeps while its callback runs (``native``)."""

    def __init__(self, read: Callable[[Any], float]):
        self.read = read

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return self.read(obj) if obj.__dict__.get("native") else obj.__dict__.get(self.name, 0)

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value


def _period_ms(out: "JackOutput") -> float:
    return 1e3 * max(out.last_frames, 1) / out.engine.output_rate


class JackOutput(AudioOutput):
    """Mixes the engine in the JACK client's process callback and measures it.

    With the engine's C mixer (``engine.mix.native``) the callback is C (``cmix.CVoices.
    attach_jack``), MIDI included; otherwise a Python callback runs the polled inputs and
    ``engine.process``. Same counters as ``AudioOutput`` either way; ``xruns`` are the
    server's xrun notifications, and ``start_late_max`` is the latest any callback started
    in its cycle (frames).

    Args:
        engine: the engine to play (built with ``output_rate`` = JACK's rate).
        jack_client: from ``JackClient``; its outputs feed ``jack_client.playback``.
        channels: output ports (out_0, out_1); the split pads go to the second.
    """

    callbacks = _Counter(lambda self: self.engine.mix.callbacks)
    callback_ms = _Counter(lambda self: self.engine.mix.callback_ms)
    callback_max_ms = _Counter(lambda self: self.engine.mix.callback_max_ms)
    load = _Counter(lambda self: self.engine.mix.callback_ms / _period_ms(self))
    load_max = _Counter(lambda self: self.engine.mix.callback_max_ms / _period_ms(self))
    start_late_max = _Counter(lambda self: self.engine.mix.start_late_max)

    def __init__(self, engine: Engine, jack_client: JackClient, channels: int = 2):
        super().__init__(engine, device=-1, channels=channels, blocksize=0)
        self.native = bool(engine.mix.native)
        self.jack = jack_client
        self.midi: Any = None  # a JackMidiInput, read by the C callback (``add_midi``)
        client = jack_client.client
        self.last_frames = int(client.blocksize)
        self.ports = [client.outports.register(f"out_{c}") for c in range(channels)]
        if not self.native:
            client.set_process_callback(self._process)
        client.set_xrun_callback(self._xrun)  # JACK calls these two from its notification thread
        client.set_shutdown_callback(self._shutdown)
        self._active = False

    def add_midi(self, midi: Any) -> None:
        """Read a ``JackMidiInput`` in the callback (before ``start``)."""
        if self.native:
            self.midi = midi
            midi.read_by(self.engine.mix)
        else:
            super().add_midi(midi)

    def _shutdown(self, status, reason: str) -> None:
        # On a JACK thread, as from a signal handler: only set a flag the main loop reads.
        self.lost = reason or "no reason given"

    def _xrun(self, delay: float) -> None:
        self.xruns += 1
        self.last_status = f"xrun ({delay:.0f} us late)"

    def _process(self, frames: int) -> None:
        # How far into the cycle this callback got going: the thread's wake-up plus its
        # wait for the GIL, which ``callback_max_ms`` (measured inside) cannot see.
        late = self.jack.client.frames_since_cycle_start
        if late > self.start_late_max:
            self.start_late_max = late
        self._block([p.get_array() for p in self.ports], frames)

    def start(self) -> None:
        jack = _jack()
        client = self.jack.client
        if self.native:
            h = self.midi.handler if self.midi is not None else None
            self.engine.mix.attach_jack(client, self.ports, self.midi.port if self.midi is not None else None,
                                        h.note_pad if h is not None else None, self.engine.velocity_gain)
        try:
            client.activate()
            self._active = True
            playback = self.jack.playback
            for c, port in enumerate(self.ports):
                if playback:
                    client.connect(port, playback[min(c, len(playback) - 1)])
        except jack.JackError as err:
            raise FlowshotError(f"cannot connect to JACK output {self.jack.name!r} ({err}); check --device") from None

    @property
    def latency_frames(self) -> int:
        return int(self.jack.client.blocksize) if self._active and self.jack else 0

    def stop(self) -> None:
        if self._active and self.lost is None:  # a server that has gone cannot deactivate us
            self.jack.client.deactivate()
        self._active = False
        if self.jack is not None:
            self.jack.client.close()
            self.jack = None
