"""Kit presets: the whole playable state of the engine as one JSON file.

A kit stores each pad's base point (or fixed latent), label, source and morph, the knob
values, temperature, choke groups and velocity curve, plus the model's shape so a kit made
for another model is refused instead of played as noise.
"""

from __future__ import annotations

import json
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


def apply_kit(engine: Engine, data: Any, where: str = "kit") -> None:
    """Apply kit data (see ``kit_to_dict``) to ``engine``; raises FlowshotError on any mismatch."""
    if not isinstance(data, dict) or data.get("flowshot_kit") != KIT_FORMAT:
        raise FlowshotError(f"{where} is not a flowshot kit (format {KIT_FORMAT}); give a file written by kit/save")
    d = engine.backend.latent_dim
    model = data.get("model") or {}
    if model.get("latent_dim") != d:
        raise FlowshotError(f"{where} was made for a model with latent_dim {model.get('latent_dim')}, this one has {d}; load it with its own model")
    try:
        pads = []
        for i, p in enumerate(data["pads"][: engine.n_pads]):
            base = None if p.get("base") is None else np.asarray(p["base"], dtype=np.float64)
            latent = None if p.get("latent") is None else np.asarray(p["latent"], dtype=np.float64)
            for v in (base, latent):
                if v is not None and (v.shape != (d,) or not np.all(np.isfinite(v))):
                    raise ValueError(f"pad {i} vector")
            if base is None and latent is None:
                raise ValueError(f"pad {i} has neither base nor latent")
            morph = p.get("morph")
            pad = Pad(base=base, latent=latent, label=str(p.get("label", "")), source=str(p.get("source", "")))
            if morph:
                pad.morph_target = int(morph["target"])
                pad.morph_amount = float(morph["amount"])
                if not 0 <= pad.morph_target < engine.n_pads:
                    raise ValueError(f"pad {i} morph target")
            pads.append(pad)
        knobs = [float(k) for k in data.get("knobs", [])]
        groups = [[int(x) for x in g] for g in data.get("choke_groups", [])]
        temperature = float(data.get("temperature", engine.temperature))
        exponent = float(data.get("velocity_exponent", engine.settings.velocity_exponent))
    except (KeyError, TypeError, ValueError) as err:
        raise FlowshotError(f"{where} has a bad entry ({err}); give a file written by kit/save") from None
    engine.set_choke_groups(groups)
    with engine._lock:
        engine.pads[: len(pads)] = pads
        for k, v in enumerate(knobs[: engine.n_knobs]):
            r = engine.settings.knob_range
            engine.knobs[k] = min(max(v, -r), r)
        engine._changed(range(engine.n_pads))
    engine.set_temperature(temperature)
    engine.settings.velocity_exponent = exponent
