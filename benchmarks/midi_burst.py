"""MIDI bursts into the live host on a real JACK server: does it survive, what arrives?

Runs `flowshot realtime play --midi --osc` as a subprocess on a dummy-clock jackd (48 kHz,
128-frame periods by default) and, ``--bursts`` times, has a JACK probe write ``N`` MIDI
events into ONE cycle (a note-on on pads 0-15 every fourth event, CCs 21-28 between),
then waits for the next cycle. A MIDI cable carries about 1,000 messages a second; a
DAW or a script on the same JACK server can write thousands in one cycle, and a sender
that runs late makes its events land in the host's cycle all at once.

Prints, per burst size and run: whether the host lived (its exit status; -11 is a
segmentation fault), note-ons sent and hits the host played (more than sent means events
were read twice; fewer, dropped: the engine keeps at most 1,024 hits a block), and xruns.

    .venv/bin/python benchmarks/midi_burst.py --model RUN/flowshot.ts --sizes 64 256 1000 --runs 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the JACK probe and host helpers live with the tests


def one_run(model: Path, events: int, bursts: int, period: int) -> dict:
    from test_realtime_jack import Host, JackProbe, burst_messages, start_jackd, stop_process

    name = f"flowshot-burst-{os.getpid()}"
    server = start_jackd(name, period=period)
    files = Path(tempfile.mkdtemp(prefix="flowshot-burst-"))
    host = probe = None
    out = {"notes": 0, "hits": None, "xruns": None, "exit": None, "bursts": 0}
    try:
        host = Host(name, model, files)
        probe = JackProbe(name, seconds=2)
        probe.activate("flowshot:out_0", "flowshot:flowshot")
        time.sleep(0.5)
        before = host.stats()
        messages = burst_messages(events)
        for _ in range(bursts):
            probe.send_burst(messages)  # the probe's next cycle takes the whole burst
            if host.proc.poll() is not None:
                break
            out["bursts"] += 1
            out["notes"] += len(messages[::4])
            time.sleep(2 * period / probe.client.samplerate)
        time.sleep(0.5)
        if host.proc.poll() is None:
            after = host.stats()
            out["hits"], out["xruns"] = int(after[2] - before[2]), int(after[0] - before[0])
    finally:
        if probe is not None:
            probe.close()
        if host is not None:
            stop_process(host.proc)  # not host.stop(): a crashed host printed no stats line
            out["exit"] = host.proc.returncode
        stop_process(server)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True, help=".ckpt, .ts or ONNX folder")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1000], help="MIDI events per burst")
    ap.add_argument("--bursts", type=int, default=200, help="bursts per run")
    ap.add_argument("--runs", type=int, default=2, help="runs per burst size (each on a fresh jackd and host)")
    ap.add_argument("--period", type=int, default=128)
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"MIDI bursts into the host: {args.bursts} bursts a run, {args.period}-frame periods at 48 kHz")
    for col in ("events a burst", "run", "bursts sent", "host", "note-ons sent", "hits played", "xruns (host)"):
        t.add_column(col, justify="right")
    for size in args.sizes:
        for run in range(1, args.runs + 1):
            r = one_run(args.model, size, args.bursts, args.period)
            state = {0: "lived", -11: "CRASHED (SIGSEGV)"}.get(r["exit"], f"exit {r['exit']}")
            if r["hits"] is None and r["exit"] == 0:
                state = "no stats"
            t.add_row(str(size), str(run), str(r["bursts"]), state, str(r["notes"]),
                      "-" if r["hits"] is None else str(r["hits"]), "-" if r["xruns"] is None else str(r["xruns"]))
            Console().print(f"size {size} run {run}: {state}", style="dim")
    Console().print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
