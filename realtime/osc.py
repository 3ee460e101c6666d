"""OSC control over UDP (python-osc), safe to expose to a DAW or a network.

Addresses (pads and knobs are 0-based):

    /flowshot/pad/<n>/trigger [velocity 0..1]   hit pad n (default velocity 1; 0 or below: ignored)
    /flowshot/note <note> <velocity 0..127>     hit the pad of a MIDI note
    /flowshot/knob/<i> <value>                  knob i in macro stds (clamped to +-range)
    /flowshot/temperature <t>                   temperature of later randomize draws (0..3)
    /flowshot/pad/<n>/randomize [seed]          new prior draw for pad n
    /flowshot/pad/<n>/load <file>               encode a sound file into pad n
    /flowshot/pad/<n>/morph <m> <amount 0..1>   pad n moves towards pad m
    /flowshot/kit/save <file>                   write the kit JSON
    /flowshot/kit/load <file>                   read a kit JSON
    /flowshot/stats                             reply /flowshot/stats to the sender

Files must lie inside ``files_dir`` (symlinks resolved); writing is refused when the server
listens beyond loopback unless ``allow_remote_writes``. Bad messages are ignored and logged
(rate-limited): nothing a client sends can stop the instrument.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import threading
from pathlib import Path
from typing import Any, Callable

from flowshot.errors import FlowshotError
from flowshot.realtime.engine import Engine
from flowshot.realtime.kit import load_kit, save_kit
from flowshot.realtime.log import LogOnce

DEFAULT_PORT = 9000


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def contained_path(root: Path, given: str) -> Path:
    """Resolve ``given`` relative to ``root``; refuse anything that ends up outside it.

    Absolute paths, ``..`` and symlinks are all resolved first, so none of them can escape.
    """
    if not isinstance(given, str) or not given or "\x00" in given:
        raise FlowshotError(f"file name {given!r} is empty or not a string")
    root = root.resolve()
    target = (root / given).resolve()
    if target != root and root not in target.parents:
        raise FlowshotError(f"{given!r} lies outside the files folder {root}; use a path inside it")
    return target


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FlowshotError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _index(text: str, what: str) -> int:
    if not text.isdigit():
        raise FlowshotError(f"{what} {text!r} is not a number")
    return int(text)


class OscControl:
    """Dispatches OSC messages to an engine; transport-free so it can be tested directly.

    Args:
        engine: the engine to control.
        files_dir: folder that every file named over OSC must lie in.
        allow_writes: whether /flowshot/kit/save may write.
        stats: callable returning the numbers sent back for /flowshot/stats.
    """

    def __init__(self, engine: Engine, files_dir: Path, allow_writes: bool = True,
                 stats: Callable[[], dict[str, float]] | None = None, log: LogOnce | None = None):
        self.engine = engine
        self.files_dir = Path(files_dir)
        self.allow_writes = allow_writes
        self.stats = stats or (lambda: {})
        self.log = log or LogOnce()
        self.received = 0
        self.refused = 0

    def handle(self, address: str, args: tuple) -> list[Any] | None:
        """Apply one message; returns reply arguments for /flowshot/stats, else None.

        Raises FlowshotError for anything it refuses (the server logs it)."""
        self.received += 1
        e = self.engine
        parts = address.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "flowshot":
            raise FlowshotError(f"unknown OSC address {address}")
        head = parts[1]
        if head == "pad" and len(parts) == 4:
            pad = _index(parts[2], "pad")
            if not 0 <= pad < e.n_pads:
                raise FlowshotError(f"pad {pad} does not exist (0..{e.n_pads - 1})")
            verb = parts[3]
            if verb == "trigger":
                v = _number(args[0], "velocity") if args else 1.0
                if v <= 0.0:
                    # Like a MIDI note-on at velocity 0: no hit. A silent voice would still
                    # steal a slot and choke its group. Button surfaces send 0 on release, so
                    # this is logged under its own key, not counted as refused.
                    self.log("trigger0", f"OSC {address} with velocity {v:g} hits nothing; ignored")
                    return None
                e.trigger(pad, e.velocity_gain(min(v, 1.0) * 127.0))
            elif verb == "randomize":
                seed = int(_number(args[0], "seed")) if args else None
                e.randomize_pad(pad, seed)
            elif verb == "load":
                e.load_wav(pad, self._file(args, must_exist=True))
            elif verb == "morph":
                if len(args) < 2:
                    raise FlowshotError(f"{address} needs <pad> <amount>")
                target = int(_number(args[0], "morph pad"))
                e.morph(pad, target, min(max(_number(args[1], "morph amount"), 0.0), 1.0))
            else:
                raise FlowshotError(f"unknown OSC address {address}")
        elif head == "knob" and len(parts) == 3:
            k = _index(parts[2], "knob")
            if not 0 <= k < e.n_knobs:
                raise FlowshotError(f"knob {k} does not exist (0..{e.n_knobs - 1})")
            if not args:
                raise FlowshotError(f"{address} needs a value")
            e.set_knob(k, _number(args[0], "knob value"))
        elif head == "note" and len(parts) == 2:
            if len(args) < 1:
                raise FlowshotError(f"{address} needs <note> [velocity]")
            note = int(_number(args[0], "note"))
            vel = _number(args[1], "velocity") if len(args) > 1 else 100.0
            if not e.note_on(note, min(max(vel, 0.0), 127.0)):
                raise FlowshotError(f"note {note} has no pad (or velocity 0)")
        elif head == "temperature" and len(parts) == 2:
            if not args:
                raise FlowshotError(f"{address} needs a value")
            e.set_temperature(_number(args[0], "temperature"))
        elif head == "kit" and len(parts) == 3 and parts[2] in ("save", "load"):
            if parts[2] == "save":
                if not self.allow_writes:
                    raise FlowshotError("kit/save is off: OSC listens beyond loopback (start with --allow-remote-writes)")
                save_kit(e, self._file(args, must_exist=False))
            else:
                load_kit(e, self._file(args, must_exist=True))
        elif head == "stats" and len(parts) == 2:
            return [float(v) for v in self.stats().values()]
        else:
            raise FlowshotError(f"unknown OSC address {address}")
        return None

    def _file(self, args: tuple, must_exist: bool) -> Path:
        if not args or not isinstance(args[0], str):
            raise FlowshotError("a file name (string) is needed")
        path = contained_path(self.files_dir, args[0])
        if must_exist and not path.is_file():
            raise FlowshotError(f"{args[0]!r} is not a file in {self.files_dir}")
        return path


class OscServer:
    """A UDP server on (host, port) running ``OscControl`` in one background thread.

    One thread (not one per packet) keeps a flood of messages from starving the audio.
    """

    def __init__(self, control: OscControl, host: str = "127.0.0.1", port: int = DEFAULT_PORT):
        from pythonosc import dispatcher, osc_server

        self.control = control
        d = dispatcher.Dispatcher()
        d.set_default_handler(self._on_message, needs_reply_address=True)
        try:
            self.server = osc_server.BlockingOSCUDPServer((host, port), d)
        except OSError as err:
            raise FlowshotError(f"cannot listen for OSC on {host}:{port} ({err.strerror}); choose another --osc port") from None
        self.host, self.port = self.server.server_address[:2]
        # A larger receive buffer absorbs bursts (a DAW sending a whole bar at once) without loss.
        self.server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="flowshot-osc", daemon=True)

    def _on_message(self, client: tuple, address: str, *args: Any) -> None:
        try:
            reply = self.control.handle(address, args)
        except FlowshotError as err:
            self.control.refused += 1
            self.control.log(address.split("/")[2] if address.count("/") > 1 else address, f"OSC {address}: {err}")
            return
        except Exception as err:  # never let a message kill the server thread
            self.control.refused += 1
            self.control.log("crash:" + address, f"OSC {address} failed: {type(err).__name__}: {err}")
            return
        if reply is not None:
            from pythonosc.osc_message_builder import OscMessageBuilder

            b = OscMessageBuilder(address=address)
            for v in reply:
                b.add_arg(v)
            self.server.socket.sendto(b.build().dgram, client)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
