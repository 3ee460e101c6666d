"""Config: presets are valid, and a config survives the checkpoint round trip as plain data."""

import io

import pytest
import torch

from flowshot.model.config import PRESETS, FlowshotConfig, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_round_trips_through_weights_only_torch_load(name: str) -> None:
    cfg = preset(name)
    buf = io.BytesIO()
    torch.save({"config": cfg.to_dict()}, buf)
    buf.seek(0)
    back = FlowshotConfig.from_dict(torch.load(buf, weights_only=True)["config"])
    assert back == cfg
    assert cfg.audio.length % cfg.model.hop == 0


def test_replace_and_validation_errors() -> None:
    cfg = preset("tiny").replace(**{"model.flows": False, "train.max_steps": 7})
    assert cfg.model.flows is False and cfg.train.max_steps == 7
    with pytest.raises(KeyError):
        cfg.replace(**{"model.no_such_field": 1})
    with pytest.raises(ValueError, match="divisible"):
        cfg.replace(**{"audio.length": cfg.audio.length + 1})
    with pytest.raises(ValueError, match="unknown"):
        FlowshotConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
