"""Kit loading: a whole kit is validated before anything in the engine changes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from flowshot.errors import FlowshotError
from flowshot.realtime.engine import Engine, EngineSettings
from flowshot.realtime.kit import apply_kit, kit_to_dict, load_kit

from test_engine import ToyBackend, toy_stats


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything a kit can change, as comparable plain data."""
    return {
        "pads": [(None if p.base is None else p.base.tolist(), None if p.latent is None else p.latent.tolist(),
                  p.label, p.source, p.morph_target, p.morph_amount) for p in engine.pads],
        "knobs": list(engine.knobs),
        "temperature": engine.temperature,
        "choke_groups": copy.deepcopy(engine.choke_groups),
        "pad_group": list(engine._pad_group),
        "split_pads": (engine.split_pads, engine.split),
        "velocity_exponent": engine.settings.velocity_exponent,
        "generation": engine._generation,
        "dirty": set(engine._dirty),
    }


def make_engine() -> Engine:
    engine = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[[1, 2]], velocity_exponent=1.5))
    engine.render_pending()
    return engine


def good_kit() -> dict[str, Any]:
    """A valid kit that differs from ``make_engine`` in every field, so a partial apply shows."""
    donor = Engine(ToyBackend(toy_stats()), EngineSettings(choke_groups=[[3, 4]], velocity_exponent=2.5,
                                                           split_pads=[7]))
    donor.randomize_pad(0, seed=5)
    donor.morph(1, 0, 0.5)
    donor.set_knob(0, 1.0)
    donor.set_temperature(0.5)
    return json.loads(json.dumps(kit_to_dict(donor)))


def spoil(path: tuple, value: Any) -> dict[str, Any]:
    kit = good_kit()
    target = kit
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return kit


nan, inf = float("nan"), float("inf")
BAD_KITS = {
    "nan knob": spoil(("knobs", 1), nan),
    "inf knob": spoil(("knobs", 0), -inf),
    "string knob": spoil(("knobs", 0), "1.0"),
    "nan in pad base": spoil(("pads", 5, "base", 2), nan),
    "inf in pad latent": spoil(("pads", 6, "latent"), [0.0, inf, 0.0, 0.0]),
    "short pad vector": spoil(("pads", 5, "base"), [0.0, 1.0]),
    "nan temperature": spoil(("temperature",), nan),
    "temperature out of range": spoil(("temperature",), 40.0),
    "inf velocity exponent": spoil(("velocity_exponent",), inf),
    "velocity exponent 0": spoil(("velocity_exponent",), 0.0),
    "velocity exponent 50": spoil(("velocity_exponent",), 50.0),
    "choke group names missing pad": spoil(("choke_groups",), [[0, 1], [2, 99]]),
    "choke group negative pad": spoil(("choke_groups",), [[-1, 3]]),
    "choke groups not lists": spoil(("choke_groups",), [5]),
    "split pad missing": spoil(("split_pads",), [7, 16]),
    "split pads not a list": spoil(("split_pads",), 7),
    "nan morph amount": spoil(("pads", 1, "morph"), {"target": 0, "amount": nan}),
    "morph target missing pad": spoil(("pads", 1, "morph"), {"target": 40, "amount": 0.5}),
    "pad not an object": spoil(("pads", 3), "kick"),
    "pads not a list": spoil(("pads",), "all of them"),
    "model not an object": spoil(("model",), 4),
}


@pytest.mark.parametrize("name", list(BAD_KITS))
def test_bad_kit_is_refused_and_leaves_the_engine_untouched(name: str) -> None:
    engine = make_engine()
    before = snapshot(engine)
    with pytest.raises(FlowshotError) as err:
        apply_kit(engine, BAD_KITS[name], "k.json")
    assert "k.json" in str(err.value) and "\n" not in str(err.value)
    assert snapshot(engine) == before


def test_good_kit_changes_every_field() -> None:
    """The control for the test above: the unspoilt kit does change what the bad ones must not."""
    engine = make_engine()
    before = snapshot(engine)
    apply_kit(engine, good_kit())
    after = snapshot(engine)
    assert all(after[k] != before[k] for k in before if k != "dirty")
    assert engine.choke_groups == [[3, 4]] and engine._pad_group[3] == engine._pad_group[4] == 0
    assert engine.settings.velocity_exponent == 2.5 and engine.temperature == 0.5
    assert engine.split_pads == [7] and engine.split


def test_a_kit_from_before_split_outputs_keeps_the_engines_routing() -> None:
    engine = Engine(ToyBackend(toy_stats()), EngineSettings(split_pads=[2]))
    kit = good_kit()
    del kit["split_pads"]
    apply_kit(engine, kit)
    assert engine.split_pads == [2]
    apply_kit(engine, {**kit, "split_pads": []})
    assert engine.split_pads == [] and not engine.split


def test_nan_written_in_the_json_file_is_refused(tmp_path: Path) -> None:
    # json.loads accepts the non-standard NaN / Infinity literals, so the file parses.
    text = json.dumps(good_kit()).replace('"temperature": 0.5', '"temperature": NaN')
    assert "NaN" in text
    path = tmp_path / "nan.json"
    path.write_text(text)
    engine = make_engine()
    before = snapshot(engine)
    with pytest.raises(FlowshotError, match="temperature nan is not a finite number"):
        load_kit(engine, path)
    assert snapshot(engine) == before
