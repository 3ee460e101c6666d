"""Kit presets: the whole playable state of the engine as one JSON file.

A kit stores each pad's base point (or fixed latent), label, source and morph, the knob
values, temperature, choke groups, split-output pads and velocity curve, plus the model's
shape so a kit made for another model is refused instead of played as noise.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from flowshot.errors import FlowshotError
from flowshot.realtime.engine import Engine, Pad

KIT_FORMAT = 1


def kit_to_dict(engine: Engine) -> dict[str, Any]:
    """The engine's playable state as plain JSON-able data."""
    b = engine.backend
    pads = []
    for p in engine.pads:
        pads.append({
            "base": None if p.base is None else [float(x) for x in p.base],
            "latent": None if p.latent is None else [float(x) for x in p.latent],
            "label": p.label,
            "source": p.source,
            "morph": None if p.morph_target is None else {"target": p.morph_target, "amount": p.morph_amount},
        })
    return {
        "flowshot_kit": KIT_FORMAT,
        "model": {"sample_rate": b.sample_rate, "length": b.length, "latent_dim": b.latent_dim},
        "first_note": engine.settings.first_note,
        "pads": pads,
        "knobs": list(engine.knobs),
        "knob_labels": list(engine.knob_labels),
        "temperature": engine.temperature,
        "choke_groups": engine.choke_groups,
        "split_pads": engine.split_pads,
        "velocity_exponent": engine.settings.velocity_exponent,
    }


def save_kit(engine: Engine, path: str | Path) -> Path:
    """Write the kit atomically (temp file + rename) to ``path``."""
    path = Path(path)
    data = json.dumps(kit_to_dict(engine), indent=1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".kit-", suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as err:
        raise FlowshotError(f"cannot write kit {path} ({err.strerror}); choose a writable folder") from None
    return path


def load_kit(engine: Engine, path: str | Path) -> None:
    """Read a kit file into ``engine`` (validated completely before anything changes)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FlowshotError(f"kit {path} does not exist; save one first (kit/save) or check the path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FlowshotError(f"kit {path} is not readable JSON ({type(err).__name__}); give a file written by kit/save") from None
    apply_kit(engine, data, str(path))


# A kit/save file can only hold values the engine's setters accept; anything else is a
# hand-edited or corrupt file, and playing it would be silence, noise or a crash later.
TEMPERATURE_RANGE = (0.0, 3.0)
VELOCITY_EXPONENT_RANGE = (0.1, 4.0)


def _finite(value: Any, what: str, lo: float | None = None, hi: float | None = None) -> float:
    # bool is an int and float() parses strings ("nan" too): accept JSON numbers only.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} {value!r} is not a finite number")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{what} {value!r} is outside {lo:g}..{hi:g}")
    return float(value)


def _pad_index(value: Any, what: str, n_pads: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n_pads:
        raise ValueError(f"{what} {value!r} is not a pad (0..{n_pads - 1})")
    return value


def _vector(value: Any, what: str, d: int) -> np.ndarray | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
        raise ValueError(f"{what} is not a list of numbers")
    v = np.asarray(value, dtype=np.float64)
    if v.shape != (d,) or not np.all(np.isfinite(v)):
        raise ValueError(f"{what} must be {d} finite numbers")
    return v


def apply_kit(engine: Engine, data: Any, where: str = "kit") -> None:
    """Apply kit data (see ``kit_to_dict``) to ``engine``; raises FlowshotError on any mismatch.

    Everything is validated before anything is applied: a refused kit leaves the engine as it was.
    """
    if not isinstance(data, dict) or data.get("flowshot_kit") != KIT_FORMAT:
        raise FlowshotError(f"{where} is not a flowshot kit (format {KIT_FORMAT}); give a file written by kit/save")
    d = engine.backend.latent_dim
    model = data.get("model")
    dim = model.get("latent_dim") if isinstance(model, dict) else None
    if dim != d:
        raise FlowshotError(f"{where} was made for a model with latent_dim {dim}, this one has {d}; load it with its own model")
    n = engine.n_pads
    try:
        raw_pads = data["pads"]
        if not isinstance(raw_pads, list):
            raise ValueError("pads is not a list")
        pads = []
        for i, p in enumerate(raw_pads[:n]):
            if not isinstance(p, dict):
                raise ValueError(f"pad {i} is not an object")
            base = _vector(p.get("base"), f"pad {i} base", d)
            latent = _vector(p.get("latent"), f"pad {i} latent", d)
            if base is None and latent is None:
                raise ValueError(f"pad {i} has neither base nor latent")
            pad = Pad(base=base, latent=latent, label=str(p.get("label", "")), source=str(p.get("source", "")))
            morph = p.get("morph")
            if morph:
                if not isinstance(morph, dict):
                    raise ValueError(f"pad {i} morph is not an object")
                pad.morph_target = _pad_index(morph.get("target"), f"pad {i} morph target", n)
                pad.morph_amount = _finite(morph.get("amount"), f"pad {i} morph amount", 0.0, 1.0)
            pads.append(pad)
        raw_knobs = data.get("knobs", [])
        if not isinstance(raw_knobs, list):
            raise ValueError("knobs is not a list")
        knobs = [_finite(k, f"knob {i}") for i, k in enumerate(raw_knobs)]
        raw_groups = data.get("choke_groups", [])
        if not isinstance(raw_groups, list) or not all(isinstance(g, list) for g in raw_groups):
            raise ValueError("choke_groups is not a list of lists")
        # Checked here, not left to set_choke_groups: it assigns before it validates.
        groups = [[_pad_index(x, f"choke group {g}: entry", n) for x in g] for g in raw_groups]
        raw_split = data.get("split_pads", engine.split_pads)  # kits from before it: keep the routing
        if not isinstance(raw_split, list):
            raise ValueError("split_pads is not a list")
        split = [_pad_index(x, "split_pads entry", n) for x in raw_split]
        temperature = _finite(data.get("temperature", engine.temperature), "temperature", *TEMPERATURE_RANGE)
        exponent = _finite(data.get("velocity_exponent", engine.settings.velocity_exponent),
                           "velocity_exponent", *VELOCITY_EXPONENT_RANGE)
    except (KeyError, TypeError, ValueError) as err:
        raise FlowshotError(f"{where} has a bad entry ({err}); give a file written by kit/save") from None
    engine.set_choke_groups(groups)
    engine.set_split_pads(split)
    with engine._lock:
        engine.pads[: len(pads)] = pads
        for k, v in enumerate(knobs[: engine.n_knobs]):
            r = engine.settings.knob_range
            engine.knobs[k] = min(max(v, -r), r)
        engine._changed(range(engine.n_pads))
    engine.set_temperature(temperature)
    engine.set_velocity_exponent(exponent)
