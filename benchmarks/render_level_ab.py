"""What ``render``'s level step costs: a preset's eager ``render`` with and without
``model.render_boost_max_db``, the same weights, batch 1, one thread, interleaved call
by call so the machine's drift hits both alike. Prints median ms per one-shot.

    .venv/bin/python benchmarks/render_level_ab.py --preset base --repeats 100
"""

from __future__ import annotations

import argparse

import torch

from flowshot.model.config import preset
from flowshot.model.vae import FlowVAE


def main() -> int:
    from export_ab import interleaved_ms  # benchmarks/ is a script folder, not a package

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="base", choices=("tiny", "small", "base"))
    ap.add_argument("--repeats", type=int, default=100)
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = preset(args.preset)
    models = {f"boost {cfg.model.render_boost_max_db:g} dB (the preset)": FlowVAE(cfg).eval(),
              "boost 0 (never raised, as before)": FlowVAE(cfg.replace(**{"model.render_boost_max_db": 0.0})).eval()}
    first = next(iter(models.values()))
    for model in models.values():
        model.load_state_dict(first.state_dict())
    z = torch.randn(1, cfg.model.latent_dim)
    with torch.no_grad():
        ms = interleaved_ms({name: (lambda m=model: m.render(z)) for name, model in models.items()}, args.repeats, 1)
    print(f"| {args.preset}, eager render, batch 1, 1 thread | median ms |")
    print("|---|---:|")
    for name, value in ms.items():
        print(f"| {name} | {value:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
