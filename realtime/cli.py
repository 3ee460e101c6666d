"""``flowshot realtime play`` / ``render-midi`` (also the stand-alone ``realtime`` command)."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flowshot.errors import FlowshotError
from flowshot.realtime.limiter import CEILING_DB, RELEASE_MS

if TYPE_CHECKING:
    from flowshot.realtime.engine import Engine

# Niceness of the background render worker: CFS then gives the lead worker about ten
# times its share of a contended core, so the played pad's render is barely slowed.
BACKGROUND_NICE = 10


def limiter_max_db(engine: Engine) -> float:
    """The limiter's deepest gain reduction so far, dB (0: it never acted)."""
    return -20.0 * math.log10(max(engine.limiter_min_gain, 1e-12))


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="PATH",
                   help="flowshot checkpoint (.ckpt), exported TorchScript (.ts) or ONNX export folder")
    p.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                   help="inference runtime. auto (default): onnxruntime for an ONNX folder, and for a .ts or "
                        ".ckpt its ONNX twin (renders on onnxruntime, encoding on torch; torch alone where the "
                        "file has no twin); torch: torch only; onnx: onnxruntime or refuse")
    p.add_argument("--kit", metavar="FILE", help="kit preset JSON to start from (saved by /flowshot/kit/save)")
    p.add_argument("--map", metavar="FILE", help="MIDI map (JSON or TOML): notes -> pads, CC -> knobs")
    p.add_argument("--first-note", type=int, default=36, help="MIDI note of pad 0 (default 36 = C1)")
    p.add_argument("--pads", type=int, default=16, help="number of pads (default 16)")
    p.add_argument("--velocity-curve", type=float, default=2.0, metavar="EXP",
                   help="gain = (velocity/127)^EXP (default 2, the General MIDI curve: "
                        "40 log10(velocity/127) dB; 1 = linear)")
    p.add_argument("--gain", type=float, default=0.0, metavar="DB",
                   help="output gain in dB on every pad (default 0: one-shots peak at -1 dBFS, as the training "
                        "data; overlapping hits can sum over 0 dBFS, so -6 leaves room for about two)")
    p.add_argument("--ceiling", type=float, default=CEILING_DB, metavar="DB",
                   help=f"the master limiter holds each output under this many dBFS (default {CEILING_DB:g}; "
                        "-24..0). No look-ahead, so no added latency: hits that sum over it are turned down at "
                        "once and recover over --release; a mix under it passes untouched")
    p.add_argument("--release", type=float, default=RELEASE_MS, metavar="MS",
                   help=f"the limiter's recovery time constant in ms (default {RELEASE_MS:g}; 1..2000)")
    p.add_argument("--no-limiter", action="store_true",
                   help="no master limiter: sums over 0 dBFS clip wherever the output goes next")
    p.add_argument("--polyphony", type=int, default=16, help="voices at once; the oldest is stolen and fades out in 5 ms (default 16)")
    p.add_argument("--choke", action="append", default=None, metavar="PADS",
                   help="choke group as comma-separated pads, e.g. --choke 6,10 (repeatable; "
                        "default: closed/open hat pads from the model's stats)")
    p.add_argument("--seed", type=int, default=0, help="seed of prior draws for pads without stats")
    p.add_argument("--split-out", default=None, metavar="PADS",
                   help="comma-separated pads that sound only on the second output channel, the others on the "
                        "first, e.g. --split-out 0 for a kick on its own mixer channel (default: one mix; "
                        "render-midi then writes two channels)")
    p.add_argument("--mixer", choices=("auto", "c", "python"), default="auto",
                   help="voice mixer: c (built at install; on JACK its callback runs no Python, so no other "
                        "thread can make it late), python (same sound; the callback takes the GIL), "
                        "auto (default: c where it was built)")
    p.add_argument("--samplerate", type=int, default=None,
                   help="output rate (default: the device's rate for play, the model's for render-midi)")


def register(subparsers: argparse._SubParsersAction) -> None:
    rt = subparsers.add_parser("realtime", help="play the model live (MIDI/OSC) or render a MIDI file",
                               description="Play a flowshot model as a 16-pad instrument.")
    sub = rt.add_subparsers(dest="realtime_command", metavar="SUBCOMMAND", required=True)
    _add_subcommands(sub)


def _add_subcommands(sub: argparse._SubParsersAction) -> None:
    play = sub.add_parser("play", help="run the live instrument",
                          description="Live instrument: MIDI notes hit pads, CCs and OSC move the latent knobs.")
    _engine_args(play)
    play.add_argument("--midi", nargs="?", const="", default=None, metavar="NAME",
                      help="listen to MIDI: alone opens a virtual port 'flowshot'; NAME connects to that port")
    play.add_argument("--osc", nargs="?", const=9000, default=None, type=int, metavar="PORT",
                      help="listen to OSC on UDP PORT (default 9000)")
    play.add_argument("--osc-host", default="127.0.0.1", help="address OSC binds to (default 127.0.0.1)")
    play.add_argument("--allow-remote-writes", action="store_true",
                      help="allow /flowshot/kit/save when --osc-host is not loopback")
    play.add_argument("--files-dir", default=".", help="files named over OSC must lie in this folder (default: cwd)")
    play.add_argument("--device", default=None, help="output device index or name (default: the system default); on a JACK server, "
                           "the JACK client (or part of a port name) to feed (default: the system playback)")
    play.add_argument("--blocksize", type=int, default=0, help="frames per audio callback (0 = the driver's; on JACK always JACK's period)")
    play.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = until Ctrl-C)")
    play.add_argument("--no-ui", action="store_true", help="no live panel (print one stats line at exit)")
    play.add_argument("--render-workers", type=int, choices=(1, 2), default=2,
                      help="model processes: 2 (default) renders the pad hit last on one and the other pads on a "
                           "second at lower CPU priority, so a knob answers without waiting behind another pad; "
                           "1 renders every pad on one (half the memory)")
    play.add_argument("--no-hold-background", action="store_true",
                      help="with 2 workers, let the second keep rendering while the first answers a knob move "
                           "(default: it is paused meanwhile, so the played pad renders with the CPU to itself; "
                           "the model's worst 7-8 ms against 8-12, at the cost of a quarter of the other pads' renders)")
    play.add_argument("--no-rt", action="store_true",
                      help="keep normal scheduling for the host's Python threads (default: low real-time priority when permitted)")
    play.add_argument("--cpu-wakeup-us", type=int, default=0, metavar="US",
                      help="while playing, ask the kernel to keep every CPU's wake-up latency within US microseconds "
                           "(PM QoS, /dev/cpu_dma_latency; needs root or access to it). 0 (default) keeps idle CPUs "
                           "polling instead of sleeping, so JACK's threads wake in time (fewer xruns; costs power); "
                           "-1 = no request")
    play.set_defaults(func=cmd_play)

    rm = sub.add_parser("render-midi", help="render a MIDI file through the instrument to a WAV",
                        description="Offline, deterministic: the same pads, knobs and voices as `play`.")
    rm.add_argument("midi_file", metavar="SONG.mid")
    rm.add_argument("-o", "--out", required=True, metavar="OUT.wav")
    _engine_args(rm)
    rm.add_argument("--block", type=int, default=256, help="frames per engine block (default 256)")
    rm.set_defaults(func=cmd_render_midi)


def response_ms(engine) -> dict[str, float]:
    """Change (knob, randomise...) to first re-rendered pad sounding: median and worst, ms."""
    return _median_max_ms("response_ms", engine.response_times("change"))


def response_call_ms(engine) -> dict[str, float]:
    """Of those responses, the model call's own time (render to live), then of that the
    model's own time in its worker: median and worst, ms."""
    return {**_median_max_ms("response_call_ms", engine.response_times("call")),
            **_median_max_ms("response_model_ms", engine.response_times("model"))}


def _median_max_ms(name: str, seconds: np.ndarray) -> dict[str, float]:
    if not len(seconds):
        return {f"{name}_median": 0.0, f"{name}_max": 0.0}
    return {f"{name}_median": float(np.median(seconds) * 1e3), f"{name}_max": float(seconds.max() * 1e3)}


def _pad_numbers(text: str, flag: str, n_pads: int | None = None) -> list[int]:
    """Comma-separated pad numbers of a command-line flag, each checked against ``n_pads``."""
    try:
        pads = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise FlowshotError(f"{flag} {text} must be comma-separated pad numbers, e.g. 0,1") from None
    bad = [x for x in pads if n_pads is not None and not 0 <= x < n_pads]
    if bad:
        raise FlowshotError(f"{flag}: pad {bad[0]} does not exist; pads are 0..{n_pads - 1}")
    return pads


def stale_ms(engine) -> dict[str, float]:
    """How far behind their latest change the stale hits' renders were: mean and worst, ms."""
    n, rate = max(1, engine.stale_hits), engine.output_rate
    return {"stale_ms_mean": 1e3 * engine.stale_frames / n / rate, "stale_ms_max": 1e3 * engine.stale_frames_max / rate}


def remote_writes_allowed(osc_host: str, allow_remote_writes: bool) -> bool:
    """Whether OSC may write files: always on loopback, beyond it only when asked for.

    Anyone who can reach a non-loopback address could otherwise fill the disk or overwrite kits.
    """
    from flowshot.realtime.osc import is_loopback

    return is_loopback(osc_host) or allow_remote_writes


def _build_engine(args: argparse.Namespace, output_rate: int | None, backend=None, background=None):
    from flowshot.realtime.backends import load_backend
    from flowshot.realtime.engine import Engine, EngineSettings
    from flowshot.realtime.kit import VELOCITY_EXPONENT_RANGE, load_kit

    if backend is None:
        backend = load_backend(args.model, args.backend)
    if backend.note:  # e.g. why a .ts renders on torch, and how to make it quicker
        logging.getLogger("flowshot.realtime").warning(f"{args.model}: {backend.note}")
    chokes = [_pad_numbers(c, "--choke") for c in args.choke] if args.choke else None
    if args.pads < 1 or args.polyphony < 1:
        raise FlowshotError("--pads and --polyphony must be at least 1")
    lo, hi = VELOCITY_EXPONENT_RANGE
    # The same range a kit is checked against, so every kit this engine saves loads again.
    if not lo <= args.velocity_curve <= hi:
        raise FlowshotError(f"--velocity-curve {args.velocity_curve} is outside {lo:g}..{hi:g}; 1 is linear, 2 the MIDI curve")
    if not -60.0 <= args.gain <= 24.0:
        raise FlowshotError(f"--gain {args.gain:g} dB is outside -60..24 dB")
    if not -24.0 <= args.ceiling <= 0.0:
        raise FlowshotError(f"--ceiling {args.ceiling:g} dBFS is outside -24..0 dBFS")
    if not 1.0 <= args.release <= 2000.0:
        raise FlowshotError(f"--release {args.release:g} ms is outside 1..2000 ms")
    split = _pad_numbers(args.split_out, "--split-out", args.pads) if args.split_out else None
    settings = EngineSettings(n_pads=args.pads, first_note=args.first_note, polyphony=args.polyphony,
                              velocity_exponent=args.velocity_curve, choke_groups=chokes, seed=args.seed,
                              split_pads=split, hold_background=not getattr(args, "no_hold_background", False),
                              mixer=args.mixer, gain_db=args.gain,
                              ceiling_db=None if args.no_limiter else args.ceiling, limiter_release_ms=args.release)
    engine = Engine(backend, settings, output_rate=output_rate or backend.sample_rate, background=background)
    if args.kit:
        load_kit(engine, args.kit)
        if split is not None:
            engine.set_split_pads(split)  # given on the command line: it wins over the kit's
    return engine


def _handler(args: argparse.Namespace, engine):
    from flowshot.realtime.midi import MidiHandler, load_map

    return MidiHandler(engine, load_map(args.map) if args.map else None)


def cmd_render_midi(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from flowshot.realtime.offline import midi_events, render_midi

    engine = _build_engine(args, args.samplerate)
    events = midi_events(args.midi_file, engine.output_rate)
    if args.block < 1:
        raise FlowshotError(f"--block {args.block} must be at least 1")
    with Progress(transient=True) as progress:
        task = progress.add_task("rendering", total=1)
        audio = render_midi(engine, _handler(args, engine), events, block=args.block,
                            progress=lambda done, total: progress.update(task, completed=done, total=total))
    from flowshot.model.audio_io import write_wav

    write_wav(args.out, audio, engine.output_rate, subtype="FLOAT")
    notes = sum(1 for _, m in events if m.type == "note_on" and m.velocity > 0)
    print(f"wrote {args.out}: {audio.shape[-1] / engine.output_rate:.2f} s at {engine.output_rate} Hz, "
          f"{notes} notes, peak {float(abs(audio).max()) if audio.size else 0.0:.3f}")
    return 0


def _realtime_priority(priority: int = 2) -> bool:
    """Give this thread, and every thread it starts later, a low SCHED_FIFO priority.

    JACK runs the audio and MIDI callbacks on real-time threads, but in Python they must take
    the GIL. If a normal-priority thread holding the GIL (render bookkeeping, OSC, UI) is
    preempted by another busy process, those callbacks wait and JACK reports xruns. With
    every host thread real-time (below JACK's own priority) nothing outside can preempt a
    GIL holder. Call it after starting the model worker process, which does the heavy work
    and must keep normal scheduling. Does nothing where real-time scheduling is not permitted.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (AttributeError, PermissionError, OSError):
        return False


def _hold_cpu_wakeup(us: int) -> int | None:
    """Ask the kernel to keep CPU wake-up latency within ``us`` microseconds (PM QoS).

    A JACK cycle's threads wake from idle CPUs many times a period; from a deep idle
    state (or a virtual CPU the hypervisor has descheduled) that can take longer than
    the period itself. The request is system-wide and lasts while the returned file
    descriptor is open (close it to end it). None where not permitted or ``us`` < 0.
    """
    if us < 0:
        return None
    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
    except OSError:
        return None
    try:
        os.write(fd, int(us).to_bytes(4, sys.byteorder, signed=True))
    except OSError:
        os.close(fd)
        return None
    return fd


def cmd_play(args: argparse.Namespace) -> int:
    from flowshot.realtime.audio import AudioOutput, resolve_output

    logging.basicConfig(level=logging.WARNING, format="flowshot: %(message)s", stream=sys.stderr)
    # The audio callback needs the GIL every period (5 ms at 256/48k); Python's default
    # 5 ms switch interval would let a busy render thread make it miss deadlines.
    sys.setswitchinterval(0.0005)
    from flowshot.realtime.worker import ProcessBackend

    if not Path(args.model).exists():
        # Before the audio device: a typo in the path is the likelier mistake to report.
        raise FlowshotError(f"--model {args.model} does not exist; pass a .ckpt, an exported .ts or an ONNX export folder")
    from flowshot.realtime import jack_io

    # On a JACK server the host is a JACK client of its own (audio and MIDI in one callback:
    # see realtime/jack_io.py); elsewhere a sounddevice stream.
    jack_client = jack_io.JackClient(args.device, args.samplerate) if jack_io.server_running() else None
    if jack_client is not None:
        device, rate, channels = f"jack:{jack_client.name}", jack_client.rate, 2
        if args.blocksize and args.blocksize != jack_client.client.blocksize:
            logging.getLogger("flowshot.realtime").warning(
                f"--blocksize {args.blocksize}: JACK's period ({jack_client.client.blocksize} frames) is used")
    else:
        device, rate, channels = resolve_output(args.device, args.samplerate)
    # The model runs in a worker process: this process's GIL is for the real-time threads.
    # It starts before the priority change below, so it keeps normal scheduling.
    backend = ProcessBackend(args.model, args.backend, render_rate=rate)
    background = None
    try:
        if args.render_workers == 2:
            background = ProcessBackend(args.model, args.backend, render_rate=rate, nice=BACKGROUND_NICE)
        if not args.no_rt:
            _realtime_priority()
        engine = _build_engine(args, rate, backend, background)
    except BaseException:
        backend.close()
        if background is not None:
            background.close()
        if jack_client is not None:
            jack_client.client.close()
        raise
    engine.on_render_error = lambda msg: logging.getLogger("flowshot.realtime").warning(msg)
    if jack_client is not None:
        audio = jack_io.JackOutput(engine, jack_client, channels=channels)
    else:
        audio = AudioOutput(engine, device, channels=channels, blocksize=args.blocksize)
    if engine.split and channels < 2:
        logging.getLogger("flowshot.realtime").warning(
            "--split-out: the output device has one channel, so the split pads stay in the one mix")

    def stats() -> dict[str, float]:
        # Order is the reply order of /flowshot/stats.
        return {"xruns": audio.xruns, "callbacks": audio.callbacks, "hits": engine.hits,
                "renders": engine.render_count, "active_voices": engine.active_voices,
                "callback_max_ms": audio.callback_max_ms, "load_max": audio.load_max,
                "render_ms": engine.render_ms, "frames": engine.frames_done, "input_errors": audio.input_errors,
                **response_ms(engine), "pending_pads": engine.pending_pads,
                "stale_hits": engine.stale_hits, **stale_ms(engine), **response_call_ms(engine),
                "callback_start_late_max_ms": audio.start_late_max / rate * 1e3,
                "limited_frames": engine.frames_limited, "limiter_max_db": limiter_max_db(engine)}

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    midi = osc = None
    wakeup_fd = _hold_cpu_wakeup(args.cpu_wakeup_us)
    engine.start()
    try:
        parts = [f"audio={device}@{rate}Hz"]
        parts.append(f"mixer={'c' if engine.mix.native else 'python'}")
        if args.cpu_wakeup_us >= 0:
            parts.append(f"cpu-wakeup<={args.cpu_wakeup_us}us" if wakeup_fd is not None else "cpu-wakeup=not-permitted")
        if args.midi is not None:
            from flowshot.realtime.midi import JackMidiInput, RtMidiInput

            if jack_client is not None:
                midi = JackMidiInput(_handler(args, engine), jack_client, args.midi or None)
            else:
                midi = RtMidiInput(_handler(args, engine), args.midi or None)
            audio.add_midi(midi)
            parts.append(f"midi={midi.name}")
        if args.osc is not None:
            from flowshot.realtime.osc import OscControl, OscServer

            files = Path(args.files_dir)
            if not files.is_dir():
                raise FlowshotError(f"--files-dir {files} is not a folder")
            writes = remote_writes_allowed(args.osc_host, args.allow_remote_writes)
            osc = OscServer(OscControl(engine, files, allow_writes=writes, stats=stats), args.osc_host, args.osc)
            osc.start()
            parts.append(f"osc={osc.host}:{osc.port}")
        # Everything built so far lives until exit. Freezing it keeps the cyclic garbage
        # collector, which may run in any thread that allocates (the audio callback too)
        # and holds the GIL throughout, from walking tens of thousands of objects again and
        # again: a full collection here takes several milliseconds, more than a period.
        gc.collect()
        gc.freeze()
        # Audio last: opening ports re-sorts the JACK graph, which must not cost our stream xruns.
        audio.start()
        if midi is not None:
            midi.connect()
        print(f"flowshot realtime: ready {' '.join(parts)} model={engine.backend.describe()}", flush=True)
        end = time.monotonic() + args.duration if args.duration > 0 else None
        if args.no_ui:
            while not stop.wait(0.1):
                if end is not None and time.monotonic() >= end or audio.lost:
                    break
        else:
            from flowshot.realtime.ui import LiveUI

            workers = [b.pid for b in (backend, background) if b is not None]
            with LiveUI(engine, stats, title=f"flowshot - {engine.backend.describe()}", worker_pids=workers) as ui:
                while not stop.wait(0.12):
                    ui.refresh()
                    if end is not None and time.monotonic() >= end or audio.lost:
                        break
        if audio.lost:
            raise FlowshotError(f"the JACK server dropped the host ({audio.lost}); restart JACK, then the host")
    except KeyboardInterrupt:
        pass
    finally:
        if osc is not None:
            osc.stop()
        audio.stop()  # first: its callback polls the MIDI port
        if wakeup_fd is not None:
            os.close(wakeup_fd)
        if midi is not None:
            midi.close()
        engine.stop()
        backend.close()
        if background is not None:
            background.close()
        end_ui = "" if args.no_ui else "\n"  # rich's live panel leaves the cursor on its last line
        print(end_ui + "flowshot realtime: stats " + json.dumps({**stats(), "last_status": audio.last_status}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The stand-alone ``realtime`` command: ``realtime play ...`` == ``flowshot realtime play ...``."""
    parser = argparse.ArgumentParser(prog="realtime", description="Play a flowshot model as a 16-pad instrument.")
    sub = parser.add_subparsers(dest="realtime_command", metavar="SUBCOMMAND", required=True)
    _add_subcommands(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FlowshotError as err:
        print(f"realtime: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
