"""How fast the generator renders one one-shot: decoder + PQMF synthesis, batch 1, one thread.

Prints one row per preset: parameters (encoder, decoder, flows), decoder MFLOPs per
one-shot (conv / linear FLOPs counted by ``torch.utils.flop_counter``, PQMF synthesis
included, elementwise snakes not), and the median milliseconds per one-shot of 20 timed
calls after warm-up for eager (as trained, weight norm on), eager with weight norm
folded, and TorchScript (``torch.jit.script`` of the model, ``.decode``).

    .venv/bin/python benchmarks/decoder_speed.py [--presets tiny small base] [--repeats 20] [--json FILE]
"""

import argparse
import json
import statistics
import time
import warnings
from typing import Callable, Dict, List

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from flowshot.model.config import preset
from flowshot.model.layers import scriptable_copy
from flowshot.model.vae import FlowVAE


def _median_ms(fn: Callable[[], torch.Tensor], repeats: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def measure(name: str, repeats: int) -> Dict[str, float]:
    """One preset's row: parameter counts, decoder MFLOPs, ms per one-shot."""
    cfg = preset(name)
    torch.manual_seed(0)
    model = FlowVAE(cfg).eval()
    z = torch.randn(1, cfg.model.latent_dim)
    folded = scriptable_copy(model)  # a copy with weight norm folded into plain convs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script's deprecation notice
        scripted = torch.jit.script(model)
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            folded.decode(z)
        flops = counter.get_total_flops()
        eager = _median_ms(lambda: model.decode(z), repeats)
        eager_folded = _median_ms(lambda: folded.decode(z), repeats)
        ts = _median_ms(lambda: scripted.decode(z), repeats)
    return {
        "preset": name,
        "sample_rate": cfg.audio.sample_rate,
        "length": cfg.audio.length,
        "params_encoder": _params(model.encoder),
        "params_decoder": _params(model.decoder),
        "params_flows": _params(model.posterior_flow) + _params(model.prior_flow),
        "decoder_mflops": flops / 1e6,
        "ms_eager": eager,
        "ms_eager_folded": eager_folded,
        "ms_torchscript": ts,
    }


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "base"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    console = Console()
    rows = []
    with console.status("timing...") as status:
        for name in args.presets:
            status.update(f"timing preset {name} ...")
            rows.append(measure(name, args.repeats))
    table = Table(title=f"decoder + PQMF synthesis, batch 1, 1 thread, median of {args.repeats} (torch {torch.__version__})")
    for col in ("preset", "rate/len", "enc params", "dec params", "flow params", "dec MFLOPs",
                "eager ms", "eager folded ms", "TorchScript ms"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["preset"], f"{r['sample_rate']}/{r['length']}", f"{r['params_encoder'] / 1e6:.2f} M",
                      f"{r['params_decoder'] / 1e6:.2f} M", f"{r['params_flows'] / 1e6:.2f} M",
                      f"{r['decoder_mflops']:.0f}", f"{r['ms_eager']:.2f}", f"{r['ms_eager_folded']:.2f}",
                      f"{r['ms_torchscript']:.2f}")
    console.print(table)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
