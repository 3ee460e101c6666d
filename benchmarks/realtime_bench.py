"""Real-time host benchmark on a real JACK server (dummy clock, 48 kHz, 128-frame periods).

Runs `flowshot realtime play --midi --osc --split-out 15` as a subprocess and, for
``--seconds``, plays pads 0-14 like a drummer with 16 voices sounding while the knobs
sweep (CC 21..28 every 20 ms), without a pause. Every one-shot's length plus 0.2 s a probe
note hits pad 15, which sounds alone on the host's second output channel: its onset is
found exactly there (first non-zero sample after the MIDI event, both in JACK frames)
while the playing goes on; a probe that never sounds is counted.

Measures: trigger-to-onset latency (frames: median and worst), xruns (the host's count
and the probe's, both JACK's xrun notifications, and which client jackd found late), host CPU (share of one core) and peak memory (VmHWM), worst
callback time, the host's own knob-move-to-new-sound time (the knob's CC arriving to the
first re-rendered pad, the one played last, being live), and the time to re-render all 16
pads in one batched call (in this process).

    .venv/bin/python benchmarks/realtime_bench.py --model RUN/last.ckpt --seconds 20
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PROBE_PAD = 15  # the latency probe's pad: the host sends it to its second channel alone
sys.path.insert(0, str(REPO / "tests"))  # the JACK probe and host helpers live with the tests


def proc_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children (the host's model workers)."""
    from flowshot.realtime.ui import process_cpu_seconds

    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(c) for c in (task / "children").read_text().split()]
    return sum(process_cpu_seconds(p) or 0.0 for p in pids)


def proc_peak_rss_mb(pid: int) -> tuple[float, float]:
    """Peak resident memory (VmHWM) of the host process and of its children, MiB."""
    def hwm(p: int) -> float:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    kids = [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
    return hwm(pid), sum(hwm(k) for k in kids)


def rerender_times(model: Path, repeats: int) -> list[float]:
    """Milliseconds to re-render all 16 pads after a knob move (one batched model call)."""
    import torch

    from flowshot.realtime.backends import load_backend
    from flowshot.realtime.engine import Engine

    torch.set_num_threads(1)
    engine = Engine(load_backend(model), output_rate=48000)
    engine.render_pending()
    times = []
    for i in range(repeats):
        engine.set_knob(i % engine.n_knobs, ((i % 7) - 3) / 2)
        t0 = time.perf_counter()
        engine.render_pending()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _stand_in_host(server: str, seconds: float) -> None:
    """The JACK graph of the host without flowshot: one Python client with an audio output
    and a MIDI input (like the host's own, realtime/jack_io.py), doing trivial work."""
    import jack

    client = jack.Client("stand-in", servername=server, no_start_server=True)
    out = client.outports.register("out")
    inp = client.midi_inports.register("in")

    def process(frames: int) -> None:
        sum(1 for _ in inp.incoming_midi_events())
        out.get_array().fill(0.0)

    client.set_process_callback(process)
    client.activate()
    time.sleep(seconds)
    client.close()


def machine_baseline(rate: int, period: int, seconds: float) -> list[tuple[str, int]]:
    """JACK xruns with no flowshot at all, read the host's xruns against them: the probe
    client alone (idle, and beside two busy normal-priority processes), then the probe
    playing notes at the benchmark's pace into a stand-in for the host's JACK client.
    On a virtual machine these are the hypervisor's and the kernel's, not the host's."""
    import multiprocessing as mp

    import test_realtime_jack as rig

    ctx = mp.get_context("spawn")
    rows = []
    cases = (("probe alone, idle machine", 0, False), ("probe alone, 2 busy normal-priority processes", 2, False),
             ("probe playing into a stand-in Python client (the host's graph, no flowshot)", 0, True))
    for label, burners, stand_in in cases:
        server = f"flowshot-baseline-{os.getpid()}-{len(rows)}"
        jackd = rig.start_jackd(server, rate, period)
        procs = [ctx.Process(target=_burn, args=(seconds + 1,)) for _ in range(burners)]
        if stand_in:
            procs.append(ctx.Process(target=_stand_in_host, args=(server, seconds + 5)))
        rt = False
        try:
            for p in procs:
                p.start()
            probe = rig.JackProbe(server, seconds=seconds + 10)
            if stand_in:
                time.sleep(3)  # the stand-in's clients register
                rt = rig.set_priority(os.SCHED_FIFO, 2)  # as in the real run (see main)
                probe.activate("stand-in:out", "stand-in:in")
            else:
                probe.client.activate()  # nothing to connect: it only has to be scheduled on time
            start = probe.xruns
            end = time.monotonic() + seconds
            n = 0
            while time.monotonic() < end:
                if stand_in:
                    probe.send_midi([0x90, 36 + n % 16, 100])
                    n += 1
                time.sleep(0.016)
            rows.append((label, probe.xruns - start))
            probe.close()
        finally:
            if rt:
                rig.set_priority(os.SCHED_OTHER, 0)
            for p in procs:
                p.terminate()
                p.join()
            rig.stop_process(jackd)
    return rows


def host_stats(host) -> list[float]:
    """The host's /flowshot/stats, asked twice (a UDP reply can be lost); if neither comes,
    a one-line error with what is known instead of a traceback that loses the run."""
    for _ in range(2):
        try:
            return host.stats()
        except TimeoutError:
            pass
    state = "running" if host.proc.poll() is None else f"exited with {host.proc.returncode}"
    tail = " | ".join(line.strip() for line in host.err[-5:])
    raise SystemExit(f"realtime_bench.py: the host ({state}) did not answer /flowshot/stats twice; its last stderr: {tail}")


def late_clients(log: Path) -> dict[str, int]:
    """xruns by the client jackd names late ("XRun: client = NAME was not finished"). The
    probe is a Python client sharing this process's GIL with the playing loop, so its own
    lateness is the rig's, not the host's."""
    counts = {"flowshot": 0, "flowshot-probe": 0, "other": 0}
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in text.splitlines():
        if "XRun: client = " in line:
            name = line.split("XRun: client = ", 1)[1].split(" was ", 1)[0]
            counts[name if name in counts else "other"] += 1
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help=".ckpt, .ts or ONNX folder (required unless --baseline)")
    ap.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"))
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--period", type=int, default=128)
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--rerenders", type=int, default=20)
    ap.add_argument("--jack-log", type=Path, default=None, help="write jackd's output here (it names late clients)")
    ap.add_argument("--no-knobs", action="store_true", help="play the hits without sweeping the knobs")
    ap.add_argument("--cpu-wakeup-us", type=int, default=0,
                    help="the host's --cpu-wakeup-us (default 0, as the host's; -1 = no PM QoS request)")
    ap.add_argument("--render-workers", type=int, choices=(1, 2), default=2,
                    help="the host's model processes (its --render-workers)")
    ap.add_argument("--no-rt", action="store_true", help="the host's --no-rt: its Python threads keep normal scheduling")
    ap.add_argument("--mixer", choices=("auto", "c", "python"), default="auto",
                    help="the host's --mixer: c (its JACK callback runs no Python) or python")
    ap.add_argument("--no-hold-background", action="store_true",
                    help="the host's --no-hold-background: its second worker keeps rendering during knob answers")
    ap.add_argument("--baseline", action="store_true",
                    help="only measure the machine's own JACK xruns (no flowshot), idle and under load")
    args = ap.parse_args()
    if shutil.which("jackd") is None:
        print("jackd is not installed (apt-get install jackd2)", file=sys.stderr)
        return 2

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    if args.baseline:
        t = Table(title=f"JACK xruns without flowshot: {args.rate} Hz, {args.period}-frame periods, {args.seconds:.0f} s each")
        t.add_column("machine state")
        t.add_column("xruns (JACK server)", justify="right")
        for label, n in machine_baseline(args.rate, args.period, args.seconds):
            t.add_row(label, str(n))
        Console().print(t)
        return 0
    if args.model is None:
        print("realtime_bench.py: --model is required (a .ckpt, .ts or ONNX folder)", file=sys.stderr)
        return 2

    import test_realtime_jack as rig

    console = Console()
    server = f"flowshot-bench-{os.getpid()}"
    files = Path(f"/tmp/flowshot-bench-{os.getpid()}")
    files.mkdir(exist_ok=True)
    jack_log = args.jack_log or files.parent / f"flowshot-bench-{os.getpid()}-jackd.log"
    jackd = rig.start_jackd(server, args.rate, args.period, log=jack_log)
    try:
        host = rig.Host(server, Path(args.model), files, extra=["--backend", args.backend, "--render-workers",
                                                                 str(args.render_workers), "--split-out", str(PROBE_PAD)]
                         + (["--no-hold-background"] if args.no_hold_background else [])
                         + ["--cpu-wakeup-us", str(args.cpu_wakeup_us), "--mixer", args.mixer]
                         + (["--no-rt"] if args.no_rt else []))
        # The probe shares this process's GIL with the playing loop below (see
        # rig.set_priority). After the host started: it must not inherit this.
        rt_bench = rig.set_priority(os.SCHED_FIFO, 2)
        probe = rig.JackProbe(server, seconds=args.seconds + 10)
        sys.setswitchinterval(0.0005)
        probe.activate("flowshot:out_1", "flowshot:flowshot")  # the probe pad's channel alone
        time.sleep(0.5)
        pid = host.proc.pid
        base_stats, base_jack = host.stats(), probe.xruns
        cpu0, t0 = proc_cpu_seconds(pid), time.monotonic()
        pad_seconds = 12288 / args.rate  # refreshed below from the host's description
        for line in host.lines:
            if "samples" in line and "Hz," in line:
                hz, n = line.split("(")[-1].split(",")[:2]
                pad_seconds = int(n.split()[0]) / int(hz.split()[0])
        # The runtime the host's ready line names (onnxruntime+torch: a .ts or .ckpt's ONNX twin).
        runtime = next((ln.split("model=", 1)[1].split(" ")[0] for ln in host.lines if "model=" in ln), "?")
        gap = pad_seconds / 16  # one new hit per 1/16 of a one-shot: 16 voices sounding
        probe_every = pad_seconds + 0.2  # the probe channel is silent before each probe
        probes: list[int] = []  # JACK frames of the probe notes, read out after the run
        knob_moves = 0
        hits = 0
        end = t0 + args.seconds
        next_hit = next_knob = time.monotonic()
        next_probe = next_hit + 0.1
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("playing 16 voices, sweeping knobs", total=args.seconds)
            while (now := time.monotonic()) < end:
                if now >= next_hit:
                    probe.send_midi([0x90, 36 + hits % PROBE_PAD, 60 + hits % 60])
                    hits += 1
                    next_hit += gap
                if not args.no_knobs and now >= next_knob:
                    k = knob_moves % 8
                    probe.send_midi([0xB0, 21 + k, int(64 + 60 * np.sin(knob_moves / 7))])
                    knob_moves += 1
                    next_knob += 0.02
                if now >= next_probe and now < end - 0.2:
                    probes.append(probe.send_midi([0x90, 36 + PROBE_PAD, 127]))
                    next_probe += probe_every
                    progress.update(task, completed=min(args.seconds, now - t0))
                time.sleep(0.001)
        delays: list[int] = []
        lost = 0  # probes with no onset within 8 periods
        lost_at: list[float] = []  # their times, seconds after the first probe
        for frame in probes:
            nz = np.flatnonzero(probe.segment(frame, 8 * args.period))
            if len(nz):
                delays.append(int(nz[0]))
            else:
                lost += 1
                lost_at.append((frame - probes[0]) / args.rate)
        wall = time.monotonic() - t0
        cpu = proc_cpu_seconds(pid) - cpu0
        stats = host_stats(host)
        jack_xruns = probe.xruns - base_jack
        peak_mb = proc_peak_rss_mb(pid)
        probe.close()
        final = host.stop()
    finally:
        rig.stop_process(jackd)
        shutil.rmtree(files, ignore_errors=True)
    if rt_bench:
        rig.set_priority(os.SCHED_OTHER, 0)
    rer = rerender_times(Path(args.model), args.rerenders)

    t = Table(title=f"flowshot realtime host: {args.rate} Hz, {args.period}-frame periods, {wall:.0f} s, {Path(args.model).name}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    period_ms = args.period / args.rate * 1e3
    t.add_row("the host's model runtime (--backend " + args.backend + ")", runtime)
    if delays:
        t.add_row("MIDI event -> onset, median (frames)", f"{int(np.median(delays))} ({np.median(delays) / args.rate * 1e3:.2f} ms)")
        t.add_row("MIDI event -> onset, worst (frames)", f"{max(delays)} ({max(delays) / args.rate * 1e3:.2f} ms)")
    t.add_row("latency probes (of them with no onset within 8 periods)", f"{len(delays) + lost} ({lost})")
    if lost_at:
        t.add_row("  those, seconds after the first probe", ", ".join(f"{x:.2f}" for x in lost_at))
    if delays:
        counts = sorted(collections.Counter(delays).items())
        t.add_row("probes by onset: frames x count", ", ".join(f"{d} x {n}" for d, n in counts))
    t.add_row("hits played / knob moves", f"{int(stats[2] - base_stats[2])} / {knob_moves}")
    played = max(1, int(stats[2] - base_stats[2]))
    stale = int(stats[13] - base_stats[13])
    t.add_row("hits that played a pad's render from before its last knob move", f"{stale} ({100 * stale / played:.0f} %)")
    t.add_row("how far behind the knob those renders were: mean / worst (at most one render's time more)",
              f"{stats[14]:.1f} / {stats[15]:.1f} ms")
    t.add_row("xruns (host's count: JACK's xrun notifications)", str(int(stats[0] - base_stats[0])))
    t.add_row("xruns (JACK server)", str(jack_xruns))
    late = late_clients(jack_log)
    t.add_row("  the late client, by jackd's log: flowshot / this benchmark's probe / other",
              f"{late['flowshot']} / {late['flowshot-probe']} / {late['other']}")
    if not args.jack_log:
        jack_log.unlink(missing_ok=True)
    t.add_row("benchmark probe at real-time priority", "yes" if rt_bench else "no (not permitted)")
    t.add_row(f"host CPU incl. {args.render_workers} model worker(s) (share of one core)", f"{100 * cpu / wall:.1f} %")
    t.add_row("peak memory (VmHWM): audio process + model worker(s)", f"{peak_mb[0]:.0f} + {peak_mb[1]:.0f} MiB")
    t.add_row("worst callback time", f"{final['callback_max_ms']:.3f} ms of {period_ms:.2f} ms")
    if "callback_start_late_max_ms" in final:
        t.add_row("latest callback start in its cycle (wake-up; Python mixer: + GIL wait)",
                  f"{final['callback_start_late_max_ms']:.3f} ms")
    if "limited_frames" in final:
        t.add_row("master limiter: samples turned down (whole run) / deepest reduction",
                  f"{final['limited_frames']} ({100 * final['limited_frames'] / max(1, final['frames']):.1f} %) / "
                  f"{final['limiter_max_db']:.1f} dB")
    t.add_row("pad renders in the host", str(int(stats[3] - base_stats[3])))
    if args.render_workers == 2:
        t.add_row("background worker paused while the lead answers a knob", "no" if args.no_hold_background else "yes")
    t.add_row("knob move to the played pad's new sound, in the host: median / worst (last 256)",
              f"{stats[10]:.1f} / {stats[11]:.1f} ms")
    t.add_row("  of it, the render's model call to the pad being live: median / worst",
              f"{stats[16]:.1f} / {stats[17]:.1f} ms")
    t.add_row("    of that, the model in its worker process: median / worst",
              f"{stats[18]:.1f} / {stats[19]:.1f} ms")
    t.add_row("re-render 16 pads after a knob move, median", f"{np.median(rer):.1f} ms")
    t.add_row("re-render 16 pads after a knob move, worst", f"{max(rer):.1f} ms")
    console.print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
