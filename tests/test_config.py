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
    # The band-edge term needs sub-bands, and a window that fits in one sound's sub-band.
    frames = cfg.audio.length // cfg.model.pqmf_bands
    assert cfg.replace(**{"loss.edge_weight": 1.0, "loss.edge_window": frames}).loss.edge_window == frames
    with pytest.raises(ValueError, match="edge_window"):
        cfg.replace(**{"loss.edge_weight": 1.0, "loss.edge_window": frames + 1})
    with pytest.raises(ValueError, match="pqmf_bands >= 2"):
        cfg.replace(**{"loss.edge_weight": 1.0, "model.pqmf_bands": 1})
    assert cfg.replace(**{"loss.edge_window": 0}).loss.edge_weight == 0  # unused while off
    # The flatness term likewise: sub-bands, and an FFT that fits in one sound's sub-band.
    assert cfg.replace(**{"loss.flatness_weight": 1.0, "loss.flatness_fft": frames}).loss.flatness_fft == frames
    with pytest.raises(ValueError, match="flatness_fft"):
        cfg.replace(**{"loss.flatness_weight": 1.0, "loss.flatness_fft": frames + 1})
    with pytest.raises(ValueError, match="pqmf_bands >= 2"):
        cfg.replace(**{"loss.flatness_weight": 1.0, "model.pqmf_bands": 1})
