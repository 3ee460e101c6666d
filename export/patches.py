"""PureData and Max patches that play an exported flowshot instrument through nn~.

The patches are generated (``python -m flowshot.export.patches DIR``) rather than drawn by
hand because the drum-replacer patch needs one cord per latent channel (1 + latent_dim
cords from ``encode`` to ``decode``). ``max_patches/`` holds them for the default 8 macro
knobs and latent_dim 128 (presets small and base).

- ``flowshot.pd``: bang (or a velocity) -> a 5 ms gate of that height (``vline~``, sample
  accurate) -> inlet 0 of ``[nn~ flowshot sample 2048]``; 8 sliders (-3..3 std) -> ``sig~``
  -> knob inlets; temperature / seed number boxes -> ``set temperature x`` / ``set seed n``;
  ``bufsize 2048`` sent at load (nn~ for Pd ignores the creation argument for some methods).
- ``flowshot-replace.pd``: ``adc~`` -> ``[nn~ flowshot encode]`` -> ``[nn~ flowshot decode]``
  -> ``dac~``, with threshold (dBFS) and listen (samples) boxes for the encoder.
- ``flowshot.maxpat``: the ``sample`` patch for Max (click~ scaled by velocity), with comments.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BUFSIZE = 2048


class PdPatch:
    """A Pd patch built box by box; ``add`` returns the box index used by ``connect``."""

    def __init__(self, width: int = 820, height: int = 560) -> None:
        self.lines = [f"#N canvas 80 60 {width} {height} 12;"]
        self.count = 0
        self.cords: list[str] = []

    def add(self, kind: str, x: int, y: int, text: str) -> int:
        self.lines.append(f"#X {kind} {x} {y} {text};")
        self.count += 1
        return self.count - 1

    def connect(self, src: int, outlet: int, dst: int, inlet: int) -> None:
        self.cords.append(f"#X connect {src} {outlet} {dst} {inlet};")

    def text(self) -> str:
        return "\n".join(self.lines + self.cords) + "\n"


def _pd_comment(text: str) -> str:
    # Pd escapes commas and semicolons in comments; keep the texts free of both.
    return text.replace(",", " \\,").replace(";", " \\;")


def _floatatom(label: str) -> str:
    return f"5 0 0 0 {label} - - 0"


def pd_sample_patch(n_macros: int = 8, model: str = "flowshot", bufsize: int = BUFSIZE) -> str:
    """The instrument patch: trigger with velocity, macro sliders, temperature and seed."""
    p = PdPatch()
    p.add("text", 20, 10, _pd_comment(f"flowshot: click the bang to play a new one-shot from {model}.ts (next to this patch)"))
    p.add("text", 20, 32, _pd_comment("velocity = the gain of the hit. Turn DSP on first."))
    vel = p.add("floatatom", 20, 70, _floatatom("velocity"))
    bang = p.add("obj", 20, 100, "bng 25 250 50 0 empty empty hit 30 12 0 12 #fcfcfc #000000 #000000")
    store = p.add("obj", 20, 140, "f 1")
    gate = p.add("msg", 20, 170, "\\$1 \\, 0 0 5")
    line = p.add("obj", 20, 200, "vline~")
    p.connect(vel, 0, store, 1)
    p.connect(bang, 0, store, 0)
    p.connect(store, 0, gate, 0)
    p.connect(gate, 0, line, 0)
    nn = p.add("obj", 20, 460, f"nn~ {model} sample {bufsize}")
    p.connect(line, 0, nn, 0)
    p.add("text", 200, 60, _pd_comment("macro knobs: -3..3 = std along the sound's main directions"))
    for i in range(n_macros):
        x, y = 200, 85 + 30 * i
        slider = p.add("obj", x, y, f"hsl 128 15 -3 3 0 0 empty empty knob{i + 1} 134 8 0 10 #fcfcfc #000000 #000000 6350 1")
        sig = p.add("obj", x + 220, y, "sig~")
        p.connect(slider, 0, sig, 0)
        p.connect(sig, 0, nn, 1 + i)
    p.add("text", 560, 60, _pd_comment("temperature (0 = a training sound itself; 1 = around it)"))
    temp = p.add("floatatom", 560, 85, _floatatom("temperature"))
    set_temp = p.add("msg", 560, 115, "set temperature \\$1")
    p.add("text", 560, 150, _pd_comment("seed (-1 = a new sound per hit; n >= 0 = always the same sound)"))
    seed = p.add("floatatom", 560, 190, _floatatom("seed"))
    set_seed = p.add("msg", 560, 220, "set seed \\$1")
    load = p.add("obj", 560, 280, "loadbang")
    bufmsg = p.add("msg", 560, 310, f"bufsize {bufsize}")
    p.add("msg", 560, 360, "\\; pd dsp 1")
    dac = p.add("obj", 20, 500, "dac~")
    p.add("text", 200, 500, _pd_comment(f"latency: about 2 x {bufsize} samples (nn~ threads). Smaller bufsize = less latency and more CPU."))
    for src, dst in ((temp, set_temp), (seed, set_seed), (load, bufmsg)):
        p.connect(src, 0, dst, 0)
    for msg in (set_temp, set_seed, bufmsg):
        p.connect(msg, 0, nn, 0)
    p.connect(nn, 0, dac, 0)
    p.connect(nn, 0, dac, 1)
    return p.text()


def pd_replace_patch(latent_dim: int = 128, model: str = "flowshot", bufsize: int = BUFSIZE) -> str:
    """The drum replacer: every hit on the input is encoded and re-synthesised."""
    p = PdPatch(width=900, height=420)
    p.add("text", 20, 10, _pd_comment(f"flowshot drum replacer: encode each hit of the input and play its decoding ({model}.ts)."))
    p.add("text", 20, 32, _pd_comment(f"the {1 + latent_dim} cords carry a trigger and the {latent_dim} latent channels (latent_dim of the model)."))
    adc = p.add("obj", 20, 70, "adc~")
    enc = p.add("obj", 20, 200, f"nn~ {model} encode {bufsize}")
    dec = p.add("obj", 20, 300, f"nn~ {model} decode {bufsize}")
    dac = p.add("obj", 20, 360, "dac~")
    p.connect(adc, 0, enc, 0)
    for ch in range(1 + latent_dim):
        p.connect(enc, ch, dec, ch)
    p.connect(dec, 0, dac, 0)
    p.connect(dec, 0, dac, 1)
    p.add("text", 300, 70, _pd_comment("threshold in dBFS (a hit starts above it)"))
    thr = p.add("floatatom", 300, 95, _floatatom("threshold"))
    set_thr = p.add("msg", 300, 120, "set threshold \\$1")
    p.add("text", 560, 70, _pd_comment("listen: samples encoded after a hit (= latency)"))
    lis = p.add("floatatom", 560, 95, _floatatom("listen"))
    set_lis = p.add("msg", 560, 120, "set listen \\$1")
    load = p.add("obj", 300, 160, "loadbang")
    bufmsg = p.add("msg", 380, 160, f"bufsize {bufsize}")
    for src, dst in ((thr, set_thr), (lis, set_lis), (load, bufmsg)):
        p.connect(src, 0, dst, 0)
    for msg in (set_thr, set_lis, bufmsg):
        p.connect(msg, 0, enc, 0)
    p.connect(bufmsg, 0, dec, 0)
    return p.text()


def max_sample_patch(n_macros: int = 8, model: str = "flowshot", bufsize: int = BUFSIZE) -> str:
    """The instrument patch for Max, as .maxpat JSON."""
    boxes: list[dict] = []
    lines: list[dict] = []

    def box(maxclass: str, rect: list[float], text: str | None = None, inlets: int = 1, outlets: int = 1,
            outlettype: list[str] | None = None, **extra: object) -> str:
        ident = f"obj-{len(boxes) + 1}"
        b: dict = {"id": ident, "maxclass": maxclass, "numinlets": inlets, "numoutlets": outlets,
                   "patching_rect": rect, "outlettype": outlettype if outlettype is not None else [""] * outlets}
        if text is not None:
            b["text"] = text
        b.update(extra)
        boxes.append({"box": b})
        return ident

    def cord(src: str, outlet: int, dst: str, inlet: int) -> None:
        lines.append({"patchline": {"source": [src, outlet], "destination": [dst, inlet]}})

    def comment(rect: list[float], text: str) -> str:
        return box("comment", rect, text, inlets=1, outlets=0, outlettype=[])

    comment([20, 10, 600, 20], f"flowshot: click the button to play a new one-shot from {model}.ts (in Max's search path)")
    comment([20, 32, 600, 20], "velocity scales the hit: a one-sample click of that height is a rising edge for nn~")
    vel = box("flonum", [20, 70, 50, 22], inlets=1, outlets=2, outlettype=["", "bang"], parameter_enable=0)
    button = box("button", [90, 70, 24, 24], inlets=1, outlets=1, outlettype=["bang"], parameter_enable=0)
    click = box("newobj", [90, 110, 50, 22], "click~", inlets=2, outlets=1, outlettype=["signal"])
    scale = box("newobj", [90, 140, 50, 22], "*~ 1.", inlets=2, outlets=1, outlettype=["signal"])
    cord(button, 0, click, 0)
    cord(click, 0, scale, 0)
    cord(vel, 0, scale, 1)
    nn = box("newobj", [20, 460, 400, 22], f"nn~ {model} sample {bufsize}", inlets=1 + n_macros, outlets=1,
             outlettype=["signal"])
    cord(scale, 0, nn, 0)
    comment([200, 60, 400, 20], "macro knobs: -3..3 = std along the sound's main directions")
    for i in range(n_macros):
        y = 85 + 30 * i
        slider = box("slider", [200, y, 140, 20], inlets=1, outlets=1, outlettype=[""], parameter_enable=0,
                     floatoutput=1, min=-3.0, size=6.0, orientation=1)
        sig = box("newobj", [360, y, 40, 22], "sig~", inlets=1, outlets=1, outlettype=["signal"])
        cord(slider, 0, sig, 0)
        cord(sig, 0, nn, 1 + i)
        comment([410, y, 80, 20], f"knob {i + 1}")
    comment([560, 60, 300, 20], "temperature: 0 = a training sound itself, 1 = around it")
    temp = box("flonum", [560, 85, 50, 22], inlets=1, outlets=2, outlettype=["", "bang"], parameter_enable=0)
    set_temp = box("message", [560, 115, 130, 22], "set temperature $1", inlets=2, outlets=1)
    comment([560, 150, 300, 20], "seed: -1 = a new sound per hit, n >= 0 = always the same")
    seed = box("number", [560, 175, 50, 22], inlets=1, outlets=2, outlettype=["", "bang"], parameter_enable=0)
    set_seed = box("message", [560, 205, 100, 22], "set seed $1", inlets=2, outlets=1)
    load = box("newobj", [560, 260, 60, 22], "loadbang", inlets=1, outlets=1, outlettype=["bang"])
    bufmsg = box("message", [560, 290, 90, 22], f"bufsize {bufsize}", inlets=2, outlets=1)
    comment([560, 320, 300, 20], f"latency: about 2 x {bufsize} samples; the model runs at its own rate")
    dac = box("ezdac~", [20, 500, 45, 45], inlets=2, outlets=0, outlettype=[])
    for src, dst in ((temp, set_temp), (seed, set_seed), (load, bufmsg)):
        cord(src, 0, dst, 0)
    for msg in (set_temp, set_seed, bufmsg):
        cord(msg, 0, nn, 0)
    cord(nn, 0, dac, 0)
    cord(nn, 0, dac, 1)
    patcher = {"patcher": {"fileversion": 1, "appversion": {"major": 8, "minor": 5, "revision": 0, "architecture": "x64",
                                                             "modernui": 1},
                           "classnamespace": "box", "rect": [80.0, 80.0, 900.0, 600.0], "boxes": boxes, "lines": lines}}
    return json.dumps(patcher, indent=1) + "\n"


def write_patches(out_dir: str | Path, latent_dim: int = 128, n_macros: int = 8, model: str = "flowshot") -> list[Path]:
    """Write flowshot.pd, flowshot-replace.pd and flowshot.maxpat into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        f"{model}.pd": pd_sample_patch(n_macros, model),
        f"{model}-replace.pd": pd_replace_patch(latent_dim, model),
        f"{model}.maxpat": max_sample_patch(n_macros, model),
    }
    for name, text in files.items():
        (out / name).write_text(text)
    return [out / name for name in files]


if __name__ == "__main__":
    for path in write_patches(sys.argv[1] if len(sys.argv) > 1 else "max_patches"):
        print(path)
