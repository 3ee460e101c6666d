"""The trigger/voice semantics shared by the .ts instrument and the real-time host.

A sample-by-sample reference player written from the spec in ``flowshot.export.voices``
is the oracle; the scripted VoiceBank must match it exactly, whatever the block sizes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowshot.export.voices import VoiceBank

LENGTH = 50


def reference_play(trigger: np.ndarray, shots: list[np.ndarray], polyphony: int, fade: int = 0) -> np.ndarray:
    """Naive spec: trigger [N] -> out [N]; the i-th hit plays shots[i % len(shots)].

    A voice is [start, gain, shot, fade_start]; fade_start is the sample its fade-out
    began (None while not fading); it ends ``fade`` samples later (at once for fade 0).
    """

    def sounding(v: list, n: int) -> bool:
        return n - v[0] < LENGTH and (v[3] is None or n - v[3] < fade)

    out = np.zeros(len(trigger))
    voices: list[list] = []  # oldest first
    prev, hit = 0.0, 0
    for n, x in enumerate(trigger):
        if x > 0 >= prev:
            voices = [v for v in voices if sounding(v, n)]
            live = [v for v in voices if v[3] is None]
            while len(live) >= polyphony:
                live.pop(0)[3] = n  # stolen: starts fading at n (gone at once when fade is 0)
            voices = [v for v in voices if sounding(v, n)]
            fading = [v for v in voices if v[3] is not None]
            while len(fading) > polyphony:  # cut the one furthest into its fade; ties: oldest
                cut = min(fading, key=lambda v: (v[3], voices.index(v)))
                fading.remove(cut)
                voices.remove(cut)
            voices.append([n, x, shots[hit % len(shots)], None])
            hit += 1
        prev = x
        for v in voices:
            if sounding(v, n):
                ramp = 1.0 if v[3] is None else 1.0 - (n - v[3]) / max(fade - 1, 1)
                out[n] += v[1] * v[2][n - v[0]] * ramp
    return out


def run_blocks(bank: torch.jit.ScriptModule, trigger: torch.Tensor, shots: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Feed [B, N] in consecutive blocks; hit i of the whole batch (in time order) plays shots[i]."""
    outs, start, count = [], 0, 0
    while start < trigger.size(1):
        n = sizes[len(outs) % len(sizes)]
        block = trigger[:, start : start + n]
        rows, samples, gains = bank.find_hits(block)
        audio = torch.stack([shots[(count + i) % len(shots)] for i in range(rows.size(0))]) if rows.numel() else torch.zeros(0, LENGTH)
        count += rows.size(0)
        outs.append(bank.play(rows, samples, gains, audio, block.size(1)))
        start += n
    return torch.cat(outs, dim=1)


def random_trigger(rng: np.random.Generator, n: int, hits: int) -> np.ndarray:
    trig = np.zeros(n, dtype=np.float32)
    for s in rng.choice(n - 3, size=hits, replace=False):
        trig[s : s + rng.integers(1, 4)] = rng.uniform(0.2, 1.0)  # gates of 1-3 samples
    return trig


@pytest.fixture(scope="module")
def shots() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(7, LENGTH, generator=g)


@pytest.mark.parametrize("polyphony, fade", [(1, 0), (2, 0), (3, 0), (8, 0), (1, 12), (2, 5), (3, 1), (8, 30)])
def test_matches_reference_for_any_block_sizes(shots: torch.Tensor, polyphony: int, fade: int) -> None:
    rng = np.random.default_rng(polyphony)
    trig = random_trigger(rng, 600, 40)  # dense: voices overlap and get stolen (and fade)
    # One batch row so the hit order is the row's own order (shot i = i-th hit).
    expected = reference_play(trig, list(shots.numpy().astype(np.float64)), polyphony, fade)
    for sizes in ([600], [64], [1, 7, 13, 64, 3], [128, 5]):
        bank = torch.jit.script(VoiceBank(LENGTH, polyphony=polyphony, fade=fade))
        got = run_blocks(bank, torch.from_numpy(trig)[None], shots, sizes)[0].double().numpy()
        assert np.max(np.abs(got - expected)) < 1e-5, (polyphony, sizes)


def test_overlap_steal_and_gain_by_hand() -> None:
    bank = VoiceBank(LENGTH, polyphony=2)
    ones = torch.ones(LENGTH)
    trig = torch.zeros(1, 100)
    trig[0, 0] = 0.5   # voice A
    trig[0, 10] = 0.25  # voice B overlaps A
    trig[0, 20] = 1.0   # voice C steals A (the oldest), not B
    out = bank(trig, ones)[0]
    assert torch.allclose(out[:10], torch.full((10,), 0.5))
    assert torch.allclose(out[10:20], torch.full((10,), 0.75))
    assert torch.allclose(out[20:60], torch.full((40,), 1.25))  # A cut at 20; B ends at 60
    assert torch.allclose(out[60:70], torch.full((10,), 1.0))   # C alone until 70
    assert torch.all(out[70:] == 0)


def test_held_gate_is_one_hit_and_edge_value_is_gain() -> None:
    bank = VoiceBank(LENGTH, polyphony=8)
    trig = torch.zeros(1, 200)
    trig[0, 5:150] = torch.linspace(0.3, 0.9, 145)  # one long ramp gate
    out = bank(trig, torch.ones(LENGTH))[0]
    assert int((out != 0).sum()) == LENGTH and torch.allclose(out[5], torch.tensor(0.3))


def test_edge_across_blocks_and_positive_start() -> None:
    bank = VoiceBank(LENGTH, polyphony=8)
    # First sample ever positive: an edge (the sample before counts as 0).
    a = bank(torch.ones(1, 4), torch.ones(LENGTH))
    # Gate still high in the next block: no new hit.
    b = bank(torch.ones(1, 4), torch.ones(LENGTH))
    assert torch.all(a == 1) and torch.all(b == 1) and int(bank.active_voices()[0]) == 1


def test_batch_rows_are_independent_and_batch_change_resets() -> None:
    bank = VoiceBank(LENGTH, polyphony=1)
    trig = torch.zeros(3, 80)
    trig[0, 0] = 1.0
    trig[2, 40] = 0.5
    out = bank(trig, torch.ones(LENGTH))
    assert torch.all(out[1] == 0) and out[0, :LENGTH].eq(1).all() and out[2, 40:80].eq(0.5).all() and out[2, :40].eq(0).all()
    assert bank.active_voices().tolist() == [0, 0, 1]
    bank(torch.zeros(2, 8), torch.ones(LENGTH))  # batch 3 -> 2: state re-initialised
    assert bank.active_voices().tolist() == [0, 0]


def test_polyphony_setter_and_lowering() -> None:
    bank = torch.jit.script(VoiceBank(LENGTH, polyphony=4))
    assert bank.set_polyphony(0) != 0 and bank.set_polyphony(33) != 0 and bank.polyphony == 4
    trig = torch.zeros(1, 8)
    trig[0, ::2] = 1.0  # 4 hits
    bank(trig, torch.ones(LENGTH))
    assert int(bank.active_voices()[0]) == 4
    assert bank.set_polyphony(2) == 0
    trig = torch.zeros(1, 4)
    trig[0, 1] = 1.0
    out = bank(trig, torch.ones(LENGTH))
    # Next hit cuts the 3 oldest: 4 voices sounding at sample 0, 2 from sample 1 on.
    assert out[0].tolist() == [4.0, 2.0, 2.0, 2.0] and int(bank.active_voices()[0]) == 2


def test_stolen_voice_fades_by_hand() -> None:
    """A stolen voice ramps from 1 to 0 over ``fade`` samples instead of stopping dead."""
    bank = torch.jit.script(VoiceBank(LENGTH, polyphony=1, fade=4))
    trig = torch.zeros(1, 30)
    trig[0, 0] = 1.0
    trig[0, 10] = 0.5  # steals the first voice
    out = bank(trig, torch.ones(LENGTH))[0]
    expected = torch.cat([torch.ones(10), 0.5 + torch.tensor([1.0, 2 / 3, 1 / 3, 0.0]), torch.full((16,), 0.5)])
    torch.testing.assert_close(out, expected)
    assert int(bank.active_voices()[0]) == 1
    bank.set_fade(0)  # hard cut again, the old behaviour
    trig = torch.zeros(1, 4)
    trig[0, 1] = 0.25
    assert bank(trig, torch.ones(LENGTH))[0].tolist() == [0.5, 0.25, 0.25, 0.25]
