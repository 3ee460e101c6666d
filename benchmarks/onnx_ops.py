"""What single elementwise ops cost in onnxruntime on one thread: one-node graphs.

The decoder's snakes call ``Sin`` 29 times per render; this shows why that dominates an
onnxruntime render (its ``Sin`` and ``Log`` are not vectorised, ``Mul``, ``Tanh`` or
``Exp`` are). Every row includes onnxruntime's fixed cost of one ``run`` call, which the
``Identity`` row measures.

    .venv/bin/python benchmarks/onnx_ops.py [--shape 1 16 2816] [--repeats 400]
"""

import argparse
import statistics
import time
from typing import List

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper
from rich.console import Console
from rich.table import Table

OPS = ["Identity", "Mul", "Add", "Tanh", "Sigmoid", "Exp", "Log", "Sin", "Cos"]
BINARY = {"Mul", "Add"}


def op_microseconds(op: str, shape: List[int], repeats: int) -> float:
    """Median microseconds of one ``run`` of a graph holding only ``op`` on ``shape``."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    node = helper.make_node(op, ["x", "x"] if op in BINARY else ["x"], ["y"])
    model = helper.make_model(helper.make_graph([node], op, [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    for _ in range(50):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(times)


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[1, 16, 2816],
                        help="tensor shape (default: base's top stage, 16 channels x 2816 frames)")
    parser.add_argument("--repeats", type=int, default=400)
    args = parser.parse_args(argv)
    table = Table(title=f"onnxruntime {ort.__version__}, 1 thread, float32 {args.shape}")
    for col in ("op", "us per run", "us over Identity", "ns per value"):
        table.add_column(col, justify="right" if col != "op" else "left")
    n = int(np.prod(args.shape))
    base = None
    for op in OPS:
        us = op_microseconds(op, list(args.shape), args.repeats)
        base = us if base is None else base
        table.add_row(op, f"{us:.1f}", f"{us - base:.1f}", f"{1e3 * (us - base) / n:.2f}")
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
