"""Rewrite an exported graph's 1-D convolutions as 2-D ones over ``[B, C, 1, T]``.

onnxruntime's fastest CPU convolutions (MLAS "NCHWc", blocked channels) are only
used for 2-D convolutions: its graph optimiser leaves a 1-D ``Conv`` on the generic
im2col + GEMM path. Written as ``Unsqueeze -> Conv(kernel 1 x K) -> Squeeze`` the same
convolution gets the blocked kernels (with a re-order of its input and output around
it), which made `base`'s decoder about 8 % faster on one thread here; see
docs/benchmarks.md. The numbers are unchanged up to float rounding, and
``export_onnx`` still checks every graph against PyTorch after the rewrite.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _weight_tensor(graph: onnx.GraphProto, name: str) -> onnx.TensorProto | None:
    """The initializer or ``Constant`` value called ``name`` (None when computed at run time)."""
    for init in graph.initializer:
        if init.name == name:
            return init
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    return attr.t
    return None


def conv1d_as_conv2d(model: onnx.ModelProto) -> int:
    """Rewrite, in place, every 1-D ``Conv`` whose weight is a constant.

    Args:
        model: an ONNX model (opset >= 13: ``Unsqueeze``/``Squeeze`` take their axes as
            an input).
    Returns:
        the number of convolutions rewritten.
    """
    graph = model.graph
    nodes: list[onnx.NodeProto] = []
    axis = "conv2d_axis_2"
    rewritten = 0
    for node in graph.node:
        weight = _weight_tensor(graph, node.input[1]) if node.op_type == "Conv" else None
        if weight is None or len(weight.dims) != 3:
            nodes.append(node)
            continue
        if rewritten == 0:
            nodes.append(helper.make_node("Constant", [], [axis], value=numpy_helper.from_array(np.array([2], np.int64))))
        rewritten += 1
        # A weight may feed more than one node; only this conv's copy gets the new axis.
        w4 = numpy_helper.to_array(weight)[:, :, None, :]
        w_name = f"{node.name or 'conv'}_w2d_{rewritten}"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w4), w_name))
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        pads = list(attrs.get("pads", [0, 0]))
        conv_attrs = {
            "kernel_shape": [1, int(w4.shape[-1])],
            "dilations": [1, int(list(attrs.get("dilations", [1]))[0])],
            "strides": [1, int(list(attrs.get("strides", [1]))[0])],
            "pads": [0, int(pads[0]), 0, int(pads[1])],
            "group": int(attrs.get("group", 1)),
        }
        x4, y4 = f"{w_name}_in", f"{w_name}_out"
        nodes.append(helper.make_node("Unsqueeze", [node.input[0], axis], [x4]))
        nodes.append(helper.make_node("Conv", [x4, w_name, *node.input[2:]], [y4], name=node.name, **conv_attrs))
        nodes.append(helper.make_node("Squeeze", [y4, axis], [node.output[0]]))
    used = {name for n in nodes for name in n.input} | {o.name for o in graph.output}
    # The 3-D weights are now unused; keeping them would double the file's conv weights.
    nodes = [n for n in nodes if n.op_type != "Constant" or n.output[0] in used]
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    # Shapes recorded for the old 3-D intermediates would now be wrong.
    del graph.value_info[:]
    return rewritten
