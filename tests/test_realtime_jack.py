"""The live host on a real JACK server: MIDI in, audio out, OSC, measured in JACK frames.

A dummy-driver jackd (48 kHz, 256-frame periods) runs under a unique server name; the host
runs as a subprocess (`flowshot realtime play --midi --osc PORT --no-ui`); a jack-client
``JackProbe`` in this process owns a MIDI output connected to the host's virtual MIDI input
and an audio input recording the host's output, both stamped with JACK frame times.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage

from flowshot.realtime.backends import load_backend
from flowshot.realtime.engine import Engine, EngineSettings
from flowshot.realtime.limiter import CEILING_DB

from test_engine import checkpoint_for_tests
from test_osc import message

jack = pytest.importorskip("jack")
pytestmark = [pytest.mark.jack, pytest.mark.skipif(shutil.which("jackd") is None, reason="jackd not installed")]

# 256-frame periods (5.3 ms). On 2026-12-02, with Python callbacks in the host and the probe,
# 256 made xruns in every try of whole CI runs and the tests used 512. With both callbacks
# in C (2026-12-03) 256 ran without a retried session, and 128 passed too, but with half
# its sessions retried. The benchmark (benchmarks/realtime_bench.py) measures 128.
RATE, PERIOD = 48000, 256
REPO = Path(__file__).resolve().parents[1]


JACK_REGISTRY = Path("/dev/shm/jack-shm-registry")


def start_jackd(name: str, rate: int = RATE, period: int = PERIOD, log: Path | None = None) -> subprocess.Popen:
    """A dummy-clock JACK server under its own name (parallel tests never share one).

    Real-time scheduling first (client process threads then run SCHED_FIFO, as on a
    musician's machine, so other busy processes do not cause xruns); where the system
    forbids it, ``--no-realtime``. A registry full of dead servers' slots is cleared once.
    """
    said, cleared = "", False
    modes = [["-R"], ["--no-realtime"]]
    while modes:
        # jackd names the late client of each xrun; without a log, keep what it says at start.
        out = open(log, "w") if log else tempfile.TemporaryFile()
        proc = subprocess.Popen(["jackd", "-n", name, *modes[0], "-d", "dummy", "-r", str(rate), "-p", str(period)],
                                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                jack.Client("probe-wait", servername=name, no_start_server=True).close()
                out.close()  # jackd keeps its own descriptor; this process needs none
                return proc
            except jack.JackError:
                time.sleep(0.1)
        stop_process(proc)
        if log:
            out.close()
            text = log.read_text(errors="replace")
        else:
            out.seek(0)
            text = out.read().decode("utf-8", "replace")
            out.close()
        # Its error comes before the banner (stderr is unbuffered): pick it out.
        lines = [x for x in text.splitlines() if x.strip() and not x.startswith(BANNER)]
        said = " / ".join(lines[-3:])
        if "Too many servers" in text and not cleared and _clear_stale_registry():
            cleared = True  # the same mode again
        else:
            modes.pop(0)
    raise RuntimeError(f"jackd did not come up: {said or 'see ' + str(log)}")


BANNER = ("jackdmp ", "Copyright", "jackdmp comes with", "This is free software", "under certain conditions",
          "JACK server starting", "self-connect-mode")


def _clear_stale_registry() -> bool:
    """JACK keeps a few server slots in ``/dev/shm/jack-shm-registry`` and frees a dead
    server's slot only when a server of the same name starts again; killed servers under
    one-off names fill it ("Too many servers already active"). With no jackd running on
    the machine, every slot is stale, and deleting the file clears them. True if done."""
    if subprocess.run(["pgrep", "-x", "jackd"], capture_output=True).returncode == 0:
        return False
    JACK_REGISTRY.unlink(missing_ok=True)
    return True


def reclaim_server_slot(name: str) -> None:
    """After a jackd was killed (no clean exit), start one under the same name and stop it
    cleanly: starting reclaims the dead server's registry slot, stopping frees it."""
    stop_process(start_jackd(name))


def remove_client_semaphores(name: str) -> None:
    """A client still connected when its server goes leaves its semaphore in /dev/shm (a
    small file per run, seen piling up there over many runs); removed by server name."""
    for sem in Path("/dev/shm").glob(f"jack_sem.*_{name}_*"):
        sem.unlink(missing_ok=True)


def set_priority(policy: int, priority: int) -> bool:
    """Scheduling of this thread and the threads it starts later; False where not permitted.

    The probe's JACK callback shares this process's GIL with the test's own thread: at
    normal priority, that thread preempted while holding the GIL (the host's model worker
    is busy on the other core) makes the probe, not the host, miss its deadline.
    """
    try:
        os.sched_setscheduler(0, policy, os.sched_param(priority))
        return True
    except (AttributeError, PermissionError, OSError):
        return False


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _probe_library():
    """tests/jackprobe.c built with the system C compiler (cached by its source), or None."""
    import ctypes
    import hashlib

    src = Path(__file__).with_name("jackprobe.c")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    tag = hashlib.sha1(src.read_bytes()).hexdigest()[:12]
    lib = Path(tempfile.gettempdir()) / f"flowshot-jackprobe-{tag}.so"
    if not lib.exists():
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        if subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(src)], capture_output=True).returncode:
            return None
        os.replace(tmp, lib)  # atomic: parallel test processes never load a half-written file
    dll = ctypes.PyDLL(str(lib))
    dll.probe_push.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
    dll.probe_push.restype = ctypes.c_int64
    dll.probe_push_burst.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64]
    dll.probe_push_burst.restype = ctypes.c_int64
    dll.probe_sent.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    dll.probe_sent.restype = ctypes.c_int64
    dll.probe_recorded.argtypes = [ctypes.c_void_p]
    dll.probe_recorded.restype = ctypes.c_int64
    dll.probe_attach.argtypes = [ctypes.c_void_p]
    dll.probe_size.restype = ctypes.c_size_t
    return dll


class JackProbe:
    """Records one or two JACK audio inputs and sends MIDI, everything stamped in JACK frames.

    ``rec[i]`` (and ``rec2[i]``, the second input) is the sample of frame ``rec_start + i``.
    Its process callback is C (tests/jackprobe.c) where a C compiler is found: a Python
    callback would need this process's GIL every cycle and be late itself.
    """

    RING = 8192  # MIDI messages queued at most (a burst of 1,000 takes one cycle)

    def __init__(self, server: str, seconds: float = 60.0, name: str = "flowshot-probe", inputs: int = 1):
        self.client = jack.Client(name, servername=server, no_start_server=True)
        self.inport = self.client.inports.register("in")
        self.inport2 = self.client.inports.register("in2") if inputs > 1 else None
        self.midi = self.client.midi_outports.register("midi_out")
        self.rec = np.zeros(int(seconds * self.client.samplerate), np.float32)
        self.rec2 = np.zeros_like(self.rec) if inputs > 1 else None
        self.xruns = 0
        self.client.set_xrun_callback(self._xrun)  # from JACK's notification thread
        self._lib = _probe_library()
        self.native = self._lib is not None
        if self.native:
            self._attach_c()
        else:
            self._rec_start: int | None = None
            self._recorded = 0
            self.pending: collections.deque = collections.deque()
            self.sent: list[tuple[int, bytes]] = []
            self.client.set_process_callback(self._process)

    def _attach_c(self) -> None:
        import ctypes

        class State(ctypes.Structure):  # probe_t in tests/jackprobe.c
            _fields_ = [("client", ctypes.c_void_p), ("in_", ctypes.c_void_p * 2), ("midi_out", ctypes.c_void_p),
                        ("rec", ctypes.c_void_p * 2)] + \
                [(n, ctypes.c_int64) for n in ("rec_len", "rec_start", "recorded")] + \
                [(n, ctypes.c_void_p) for n in ("req_data", "req_at", "req_frame")] + \
                [(n, ctypes.c_int64) for n in ("ring", "head", "tail", "write_failed")]

        assert self._lib.probe_size() == ctypes.sizeof(State), "tests/jackprobe.c and its Python side disagree"
        ptr = lambda obj: int(jack._ffi.cast("uintptr_t", obj._ptr))  # noqa: E731
        self._req_data = np.zeros(self.RING * 4, np.uint8)
        self._req_at = np.zeros(self.RING, np.int32)
        self._req_frame = np.zeros(self.RING, np.int64)
        st = self._state = State()
        st.client, st.midi_out = ptr(self.client), ptr(self.midi)
        st.in_[0] = ptr(self.inport)
        st.in_[1] = ptr(self.inport2) if self.inport2 is not None else None
        st.rec[0] = self.rec.ctypes.data
        st.rec[1] = self.rec2.ctypes.data if self.rec2 is not None else None
        st.rec_len, st.rec_start, st.ring = len(self.rec), -1, self.RING
        st.req_data, st.req_at, st.req_frame = (a.ctypes.data for a in (self._req_data, self._req_at, self._req_frame))
        self._p = ctypes.addressof(st)
        assert self._lib.probe_attach(self._p) == 0, "could not set the C probe as the JACK process callback"

    def _xrun(self, delay: float) -> None:
        self.xruns += 1

    def _process(self, frames: int) -> None:  # the Python callback, where no C compiler is found
        t = self.client.last_frame_time
        if self._rec_start is None:
            self._rec_start = t
        i = t - self._rec_start
        if i + frames <= len(self.rec):
            self.rec[i : i + frames] = self.inport.get_array()
            if self.inport2 is not None:
                self.rec2[i : i + frames] = self.inport2.get_array()
            self._recorded = i + frames
        self.midi.clear_buffer()
        while self.pending:
            at, data = self.pending.popleft()
            self.midi.write_midi_event(at, data)
            self.sent.append((t + at, data))

    @property
    def rec_start(self) -> int | None:
        if self.native:
            return None if self._state.rec_start < 0 else int(self._state.rec_start)
        return self._rec_start

    @property
    def recorded(self) -> int:
        return int(self._lib.probe_recorded(self._p)) if self.native else self._recorded

    def activate(self, audio_from: str, midi_to: str | None, audio_from2: str | None = None) -> None:
        # This process has torch loaded (hundreds of thousands of objects): a full garbage
        # collection, in whatever thread allocates, would stall a Python callback for a
        # quarter of a second and count as the host's xruns.
        gc.collect()
        gc.freeze()
        self.client.activate()
        self.client.connect(audio_from, self.inport)
        if audio_from2:
            self.client.connect(audio_from2, self.inport2)
        if midi_to:
            self.client.connect(self.midi, midi_to)

    def _queue(self, data: bytes, at: int) -> int:
        """Queue one message; its index for ``_sent`` (waits while the ring is full)."""
        if not self.native:
            self.pending.append((at, data))
            return len(self.sent) + len(self.pending) - 1
        while (k := self._lib.probe_push(self._p, data, len(data), at)) < 0:
            time.sleep(0.001)
        return int(k)

    def _sent(self, index: int) -> int:
        """The JACK frame message ``index`` went out at, -1 while it has not."""
        if self.native:
            return int(self._lib.probe_sent(self._p, index))
        return self.sent[index][0] if index < len(self.sent) else -1

    def _wait_sent(self, index: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (frame := self._sent(index)) < 0:
            if time.monotonic() > deadline:
                raise TimeoutError("JACK process callback did not run")
            time.sleep(0.001)
        return frame

    def send_midi(self, data: list[int], timeout: float = 2.0, at: int = 0) -> int:
        """Queue a MIDI message for frame ``at`` of the next cycle; returns the JACK frame it was sent at."""
        return self._wait_sent(self._queue(bytes(data), at), timeout)

    def send_burst(self, messages: list[bytes], timeout: float = 2.0) -> int:
        """Queue all ``messages`` at once (the next cycle takes them all); returns the frame
        the last went out at."""
        if not self.native:
            n = len(self.sent) + len(self.pending)
            self.pending.extend((0, m) for m in messages)  # in C under the GIL: one cycle takes all
            return self._wait_sent(n + len(messages) - 1, timeout)
        packed = b"".join(bytes([min(len(m), 3)]) + bytes(m[:3]).ljust(3, b"\0") for m in messages)
        while (index := self._lib.probe_push_burst(self._p, packed, len(messages))) < 0:
            time.sleep(0.001)
        return self._wait_sent(int(index), timeout)

    def now(self) -> int:
        return self.client.frame_time

    def wait_until(self, frame: int) -> None:
        while self.rec_start is None or self.rec_start + self.recorded < frame:
            time.sleep(0.005)

    def segment(self, start: int, length: int, second: bool = False) -> np.ndarray:
        self.wait_until(start + length)
        i = start - self.rec_start
        return (self.rec2 if second else self.rec)[i : i + length].copy()

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def align(recording: np.ndarray, ref: np.ndarray) -> tuple[int, float, float]:
    """Best lag of ``ref`` inside ``recording``: (lag, Pearson correlation, least-squares gain)."""
    from scipy.signal import correlate

    c = correlate(recording, ref, mode="valid", method="fft")
    lag = int(np.argmax(np.abs(c)))
    seg = recording[lag : lag + len(ref)].astype(np.float64)
    r = ref.astype(np.float64)
    corr = float(np.corrcoef(seg, r)[0, 1])
    gain = float(seg @ r / (r @ r))
    return lag, corr, gain


class Host:
    """`flowshot realtime play` as a subprocess; stdout lines are collected in a thread."""

    def __init__(self, server: str, ckpt: Path, files: Path, extra: list[str] | None = None):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        self.osc_port = sock.getsockname()[1]
        sock.close()
        env = dict(os.environ, JACK_DEFAULT_SERVER=server, PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "flowshot.cli", "realtime", "play", "--model", str(ckpt), "--midi",
               "--osc", str(self.osc_port), "--no-ui", "--files-dir", str(files), "--gain", str(GAIN_DB),
               *(extra or [])]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        self.lines: list[str] = []
        self.err: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True).start()
        deadline = time.monotonic() + 120
        while not any("ready" in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                stop_process(self.proc)
                raise RuntimeError(f"host did not start: {''.join(self.err)[-2000:]}")
            time.sleep(0.1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(5)

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def osc(self, address: str, *args: object) -> None:
        self.sock.sendto(message(address, *args), ("127.0.0.1", self.osc_port))

    def stats(self) -> list[float]:
        """Host counters over OSC: xruns, callbacks, hits, renders, voices, cb max ms, load, render ms, frames,
        input errors, change-to-sound median and worst ms, pads pending a re-render, hits of a stale pad, their mean and worst lag in ms."""
        self.osc("/flowshot/stats")
        data, _ = self.sock.recvfrom(65536)
        return list(OscMessage(data).params)

    def stop(self) -> dict:
        stop_process(self.proc)
        time.sleep(0.2)
        for line in self.lines:
            if line.startswith("flowshot realtime: stats "):
                return json.loads(line.split("stats ", 1)[1])
        raise AssertionError(f"no stats line; stderr: {''.join(self.err)[-1000:]}")


JACK_LOG: dict[str, Path] = {}


@pytest.fixture(scope="module")
def jack_server(tmp_path_factory: pytest.TempPathFactory):
    name = f"flowshot-rt-{os.getpid()}"
    JACK_LOG[name] = tmp_path_factory.mktemp("jack") / "jackd.log"
    proc = start_jackd(name, log=JACK_LOG[name])
    yield name
    stop_process(proc)


def late_clients(server: str) -> str:
    """jackd's own account of each xrun: which client was late, and in which state."""
    path = JACK_LOG.get(server)
    lines = [ln.strip() for ln in path.read_text().splitlines() if "XRun: client" in ln] if path and path.exists() else []
    counts = collections.Counter(lines)
    return "; ".join(f"{n}x {line}" for line, n in counts.most_common(4)) or "none logged"


@pytest.fixture(scope="module")
def ckpt(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoint_for_tests(request, tmp_path_factory)


@pytest.fixture(scope="module")
def reference(ckpt: Path) -> Engine:
    """The offline engine: the same pads at the device rate, rendered in this process."""
    engine = Engine(load_backend(ckpt), EngineSettings(choke_groups=None, gain_db=GAIN_DB), output_rate=RATE)
    engine.render_pending()
    return engine


def check_hit(probe: JackProbe, frame: int, ref: np.ndarray, search: int = 6 * PERIOD,
              second: bool = False) -> tuple[int, float, float]:
    """(onset - frame, correlation, gain) of ``ref`` found in the recording from ``frame - PERIOD``."""
    window = probe.segment(frame - PERIOD, len(ref) + search, second)
    lag, corr, gain = align(window, ref)
    return lag - PERIOD, corr, gain


class Overload(AssertionError):
    """xruns during a session (jackd names the late clients in the message)."""


# Every host here plays 6 dB down, as --gain -6 (and the reference engine likewise): the
# model's one-shots peak at -1 dBFS at its own rate, and resampled to the device's rate a
# transient's inter-sample peak rises up to a few dB, into the master limiter, which
# would then turn down the single hits whose waveforms these tests compare. Hits that meet
# (the flood) still sum far over the ceiling.
GAIN_DB = -6.0
SESSIONS = 8  # tries of the live session; each xrun-free one must pass every check
SETTLE_S = 3.0  # pause after a session with xruns: this VM's overloads come in bursts
SPLIT_PAD = 15  # the live session runs the host with --split-out 15: that pad on the second channel only


@pytest.mark.parametrize("mixer", ["c", "python"])
def test_live_host_on_jack(jack_server: str, ckpt: Path, reference: Engine, tmp_path: Path, mixer: str) -> None:
    """The host with each voice mixer (``--mixer``: C, whose JACK callback runs no Python,
    and the Python one). One session; on xruns another, up to ``SESSIONS``. The two cores are shared with other
    jobs, and a JACK client whose real-time thread the OS does not wake in time is an xrun
    that no host code can avoid (this VM's bare JACK graph has had 26 in 20 s idle; on
    2026-12-02 the code of the day before failed all five tries in one run of three, as did
    the day's own); a host that causes xruns itself fails every session."""
    for n in range(1, SESSIONS + 1):
        try:
            live_session(jack_server, ckpt, reference, tmp_path / f"session-{n}", mixer)
            return
        except Overload as err:
            if n == SESSIONS:
                raise
            print(f"\nsession {n} had xruns, running another in {SETTLE_S:g} s: {err}")
            time.sleep(SETTLE_S)


def wait_for_render(host: "Host", renders_before: float, timeout: float = 10.0) -> None:
    """Until the host has re-rendered every pad after a knob move (the played pads first,
    then the rest a few per model call; a fixed sleep is a guess on a loaded machine), then
    one more period of settling."""
    deadline = time.monotonic() + timeout
    while (stats := host.stats())[3] <= renders_before or stats[12] > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"the host did not re-render within {timeout} s of a knob move")
        time.sleep(0.02)
    time.sleep(0.05)


def live_session(jack_server: str, ckpt: Path, reference: Engine, tmp_path: Path, mixer: str) -> None:
    tmp_path.mkdir()
    reference.set_knob(0, 0.0)
    reference.set_knob(1, 0.0)
    reference.render_pending()
    # Every reference is rendered BEFORE the probe runs: the probe's JACK callback needs this
    # process's GIL, so heavy work here during the run would cause the xruns we measure.
    plain = [a.copy() for a in reference.pad_audio]
    reference.set_knob(0, 3.0)
    reference.render_pending()
    knob0 = reference.pad_audio[0].copy()
    reference.set_knob(1, -2.0)
    reference.render_pending()
    knob01 = reference.pad_audio[0].copy()
    # The knobs must change the pad measurably (how much depends on how far the model trained).
    assert np.linalg.norm(knob01 - knob0) > 1e-3 * np.linalg.norm(knob0)
    assert np.linalg.norm(knob0 - plain[0]) > 1e-3 * np.linalg.norm(plain[0])

    files = tmp_path / "files"
    files.mkdir()
    host = Host(jack_server, ckpt, files, extra=["--split-out", str(SPLIT_PAD), "--mixer", mixer])
    # The checkpoint plays through its ONNX twin, as the reference engine renders it.
    assert any("model=onnxruntime+torch" in line for line in host.lines), host.lines
    probe = JackProbe(jack_server, inputs=2)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    rt = set_priority(os.SCHED_FIFO, 2)  # after starting the host: it must not inherit this
    try:
        probe.activate("flowshot:out_0", "flowshot:flowshot", "flowshot:out_1")
        time.sleep(0.5)
        base_host, base_probe = host.stats()[0], probe.xruns
        hits = []
        for pad, vel in [(0, 127), (3, 100), (7, 64), (0, 90)]:
            hits.append((probe.send_midi([0x90, 36 + pad, vel]), plain[pad], reference.velocity_gain(vel)))
            time.sleep(0.35)
        split_hit = probe.send_midi([0x90, 36 + SPLIT_PAD, 127])
        time.sleep(0.35)
        renders = host.stats()[3]
        probe.send_midi([0xB0, 21, 127])  # CC 21 -> knob 0 = +3 stds
        wait_for_render(host, renders)
        hits.append((probe.send_midi([0x90, 36, 127]), knob0, 1.0))
        time.sleep(0.35)
        renders = host.stats()[3]
        host.osc("/flowshot/knob/1", -2.0)
        wait_for_render(host, renders)
        osc_start = probe.now()
        host.osc("/flowshot/pad/0/trigger", 0.5)
        time.sleep(0.6)
        # Over OSC on the live host: escapes refused, a write inside allowed.
        host.osc("/flowshot/kit/save", "../escape.json")
        host.osc("/flowshot/kit/save", str(tmp_path / "abs.json"))
        host.osc("/flowshot/kit/save", "kit.json")
        # A flood of 1,000 notes/s for a second keeps the audio running.
        flood_start = probe.now()
        for i in range(1000):
            host.osc("/flowshot/note", 36 + i % 16, 100)
            time.sleep(0.001)
        time.sleep(0.3)
        flood_end = probe.now()
        stats = host.stats()
        probe_xruns = probe.xruns - base_probe
        probe.client.deactivate()
    finally:
        if rt:
            set_priority(os.SCHED_OTHER, 0)
        sys.setswitchinterval(switch)
        probe.close()
        final = host.stop()

    # An xrun drops or repeats a period of what the probe records, so the waveform checks
    # below would fail on the machine's fault: check for one first.
    if stats[0] - base_host or probe_xruns:
        raise Overload(
        f"xruns during the test: host {stats[0] - base_host}, JACK {probe_xruns}; jackd says: {late_clients(jack_server)} "
        "('state = Triggered' = the OS did not wake that client's real-time thread in time: machine overload)")
    delays = []
    for frame, ref, gain_expected in hits:
        delay, corr, gain = check_hit(probe, frame, ref)
        delays.append(delay)
        assert corr > 0.99, (delay, corr)
        assert abs(gain - gain_expected) < 0.01 * gain_expected, (gain, gain_expected)
    # The hit after the CC is the knob-0 render, not the old one: its residual against the
    # expected render is far below the difference between the two renders.
    frame = hits[-1][0]
    seg = probe.segment(frame + delays[-1], len(knob0))
    assert np.linalg.norm(seg - knob0) < 0.1 * np.linalg.norm(knob0 - plain[0])
    # The host reads MIDI in the cycle it is sent and mixes it from the start of its next
    # period: a hit sounds within one buffer (PERIOD frames) of its event, never later.
    assert all(0 <= d <= PERIOD for d in delays), delays
    # The split pad sounds on the second channel only, within one buffer as well, and the
    # other pads never reach it (until the flood, which hits the split pad too).
    delay, corr, gain = check_hit(probe, split_hit, plain[SPLIT_PAD], second=True)
    assert 0 <= delay <= PERIOD and corr > 0.99 and abs(gain - 1.0) < 0.01, (delay, corr, gain)
    delays.append(delay)
    main = probe.segment(split_hit, len(plain[SPLIT_PAD]))
    assert np.abs(main).max() < 1e-3 * np.abs(plain[SPLIT_PAD]).max(), "the split pad leaked into the main channel"
    side = probe.segment(hits[0][0] - PERIOD, split_hit - hits[0][0], second=True)
    assert not np.any(side), "other pads reached the split channel"
    print(f"\nMIDI event -> onset (frames at {RATE} Hz, period {PERIOD}): {delays}")
    window = probe.segment(osc_start, len(knob01) + RATE // 20)  # OSC arrives within 50 ms; the flood starts later
    lag, corr, gain = align(window, knob01)
    osc_gain = reference.velocity_gain(0.5 * 127)  # OSC velocity 0..1 goes through the same curve
    assert corr > 0.99 and abs(gain - osc_gain) < 0.01 * osc_gain, (corr, gain, osc_gain)
    seg = window[lag : lag + len(knob01)]
    assert np.linalg.norm(seg - osc_gain * knob01) < 0.1 * np.linalg.norm(osc_gain * (knob01 - knob0))
    assert (files / "kit.json").is_file()
    assert not (tmp_path / "escape.json").exists() and not (tmp_path / "abs.json").exists()
    assert stats[2] >= len(hits) + 1 + 990  # hits counted by the host (loopback UDP: ~no loss)
    # The flood's hits sum far over full scale; the master limiter holds the output at its
    # ceiling (the default, -0.3 dBFS) and says so in its stats.
    flood = probe.segment(flood_start, flood_end - flood_start - 4 * PERIOD)
    ceiling = 10 ** (CEILING_DB / 20)
    assert ceiling * 0.9 < np.abs(flood).max() <= ceiling * (1 + 1e-6), np.abs(flood).max()
    assert final["limited_frames"] > 0 and final["limiter_max_db"] > 1.0, final
    assert final["callbacks"] > 100 and final["load_max"] < 1.0
    assert any(f"mixer={mixer}" in line for line in host.lines)  # the mixer asked for is the one that played
    print(f"host stats at exit: {final}")


BURST = 1000  # MIDI events in one JACK cycle


def burst_messages(events: int) -> list[bytes]:
    """A burst of MIDI messages: a note-on on pads 0-15 every fourth, CCs 21-28 between."""
    return [bytes([0x90, 36 + k % 16, 100]) if k % 4 == 0 else bytes([0xB0, 21 + k % 8, k % 128])
            for k in range(events)]

OFFSET = 100  # frame inside the cycle of the hit after the bursts


def test_midi_bursts_keep_the_host_alive(jack_server: str, ckpt: Path, reference: Engine, tmp_path: Path) -> None:
    """100 bursts of 1,000 MIDI events, each written into one JACK cycle (a note every fourth,
    CCs between): the host lives through them and its next hit plays the pad as before.
    RtMidi's JACK input, the host's MIDI port until 2026-12-03, died with SIGSEGV on such
    bursts (benchmarks/midi_burst.py: 1 run of 3 at 128-frame periods, and in normal
    playing now and then). The last hit is sent 100 frames into a cycle and must start
    exactly there, a whole number of periods later: the host reads MIDI and mixes in one
    JACK callback, so notes are sample-accurate."""
    reference.set_knob(0, 0.0)
    reference.set_knob(1, 0.0)
    reference.render_pending()
    pad3 = reference.pad_audio[3].copy()
    files = tmp_path / "files"
    files.mkdir()
    host = Host(jack_server, ckpt, files)
    probe = JackProbe(jack_server, seconds=60)
    burst = burst_messages(BURST)
    try:
        probe.activate("flowshot:out_0", "flowshot:flowshot")
        time.sleep(0.3)
        hits0 = host.stats()[2]
        for _ in range(100):
            probe.send_burst(burst)  # the probe's next cycle takes all of it
            assert host.proc.poll() is None, f"host died (exit {host.proc.returncode}) during the bursts"
        time.sleep(0.5)
        assert host.proc.poll() is None, f"host died (exit {host.proc.returncode}) after the bursts"
        hits = host.stats()[2] - hits0
        # Centre the knobs again and let every pad re-render before the check.
        for cc in range(21, 29):
            probe.send_midi([0xB0, cc, 64])
        deadline = time.monotonic() + 30
        while host.stats()[12] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        for _ in range(5):  # a machine xrun during the hit spoils its recording: try again
            xruns = host.stats()[0]
            frame = probe.send_midi([0x90, 36 + 3, 127], at=OFFSET)
            time.sleep(len(pad3) / RATE + 0.3)
            if host.stats()[0] == xruns:
                break
        delay, corr, gain = check_hit(probe, frame, pad3)
    finally:
        probe.close()
        final = host.stop()
    # Many notes of the bursts are played (a cycle JACK skips loses its events: no queue;
    # 67 to 94 % on 2026-12-03).
    assert hits > 0.25 * 100 * BURST / 4, hits
    assert corr > 0.99 and abs(gain - 1.0) < 0.01, (delay, corr, gain)
    # Sample-accurate: the onset keeps the event's frame inside the cycle (0 or 1 period
    # later, depending on whether JACK runs the host before or after the probe).
    assert delay in (0, PERIOD), delay
    assert final["callbacks"] > 100
    print(f"\n{hits} of {100 * BURST // 4} burst notes played; after them: onset {delay} frames, corr {corr:.4f}")


def test_missing_midi_port_and_device_are_one_line(jack_server: str, ckpt: Path) -> None:
    env = dict(os.environ, JACK_DEFAULT_SERVER=jack_server)
    for extra, want in [(["--midi", "no-such-port"], "ports:"), (["--device", "no-such-device"], "output devices:"),
                        (["--samplerate", "44100"], f"runs at {RATE} Hz")]:
        proc = subprocess.run([sys.executable, "-m", "flowshot.realtime.cli", "play", "--model", str(ckpt),
                               "--no-ui", "--duration", "1", *extra], capture_output=True, text=True, env=env,
                              timeout=120, cwd=REPO)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and want in lines[0] and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["jackd-stopped", "jackd-killed"])
def test_host_exits_with_one_line_when_jack_goes(ckpt: Path, tmp_path: Path, how: int) -> None:
    """The JACK server stopping (or dying) under the host: it exits by itself within
    seconds, with one line saying so, not a hang or a traceback."""
    name = f"flowshot-gone-{os.getpid()}-{how}"
    server = start_jackd(name)
    files = tmp_path / "files"
    files.mkdir()
    try:
        host = Host(name, ckpt, files)
        server.send_signal(how)
        server.wait(10)
        host.proc.wait(20)
    finally:
        stop_process(server)
        if how == signal.SIGKILL:
            reclaim_server_slot(name)
        remove_client_semaphores(name)
    time.sleep(0.2)  # the reader threads collect the last lines
    assert host.proc.returncode == 2, host.proc.returncode
    err = "".join(host.err)
    errors = [line for line in err.splitlines() if line.startswith("flowshot: error:")]
    assert len(errors) == 1 and "JACK server dropped the host" in errors[0] and "Traceback" not in err, err[-2000:]
    assert any(line.startswith("flowshot realtime: stats ") for line in host.lines)


def _cpu_wakeup_request() -> int | None:
    """The kernel's current PM QoS CPU latency target, microseconds (None: not readable)."""
    try:
        with open("/dev/cpu_dma_latency", "rb") as f:
            return int.from_bytes(f.read(4), sys.byteorder, signed=True)
    except OSError:
        return None


def test_host_holds_cpu_wakeup_latency_while_it_plays(jack_server: str, ckpt: Path, tmp_path: Path) -> None:
    """By default the host asks for 0 us CPU wake-up latency while it runs and the request
    ends with it; where the system does not permit it, the ready line says so."""
    before = _cpu_wakeup_request()
    files = tmp_path / "files"
    files.mkdir()
    host = Host(jack_server, ckpt, files)
    try:
        ready = next(line for line in host.lines if "ready" in line)
        during = _cpu_wakeup_request()
    finally:
        host.stop()
    if "cpu-wakeup=not-permitted" in ready:
        pytest.skip("this system does not let the host write /dev/cpu_dma_latency")
    assert "cpu-wakeup<=0us" in ready, ready
    if before is None:
        pytest.skip("/dev/cpu_dma_latency is not readable here")
    assert during == 0, during
    assert _cpu_wakeup_request() == before


def test_c_mixer_callback_runs_while_python_holds_the_gil(jack_server: str) -> None:
    """The C mixer's JACK callback needs no GIL: while this process holds the GIL for 0.3 s
    (a libc sleep called through ctypes.PyDLL, which does not release it), the C callback
    keeps running every period, mixing a hit queued before, while a Python process
    callback of a second client in the same process stalls."""
    import ctypes

    from flowshot.realtime import cmix

    if not cmix.available():
        pytest.skip(f"C mixer not built: {cmix.why_unavailable()}")
    c_client = jack.Client("gil-c", servername=jack_server, no_start_server=True)
    py_client = jack.Client("gil-py", servername=jack_server, no_start_server=True)
    mix = cmix.CVoices(2, 2, 10, queue_size=8)
    tone = np.full(RATE, 0.25, np.float32)  # one second of a constant: the voice sounds throughout
    mix.set_pad(0, tone)
    mix.attach_jack(c_client, [c_client.outports.register("out_0")], None, None, lambda v: 1.0)
    py_calls = [0]

    def py_process(frames: int) -> None:
        py_calls[0] += 1

    py_client.outports.register("out_0")
    py_client.set_process_callback(py_process)
    libc = ctypes.PyDLL(None)
    try:
        c_client.activate()
        py_client.activate()
        time.sleep(0.3)
        mix.trigger(0, 1.0, 0)
        time.sleep(0.05)
        c0, p0 = mix.callbacks, py_calls[0]
        libc.usleep(300_000)  # holds the GIL: no Python thread of this process runs meanwhile
        c_during, p_during = mix.callbacks - c0, py_calls[0] - p0
        frames_during = mix.frames_done
    finally:
        py_client.deactivate()
        c_client.deactivate()
        py_client.close()
        c_client.close()
    periods = 0.3 * RATE / PERIOD
    print(f"\nwhile the GIL was held for 0.3 s ({periods:.0f} periods): C callbacks {c_during}, Python callbacks {p_during}")
    assert c_during > 0.8 * periods, (c_during, periods)
    assert p_during <= 2, p_during  # at most the callbacks already past the GIL when the hold began
    assert mix.hits == 1 and frames_during > 0.3 * RATE
