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
    _replace_nodes(graph, nodes)
    return rewritten


def _replace_nodes(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    """Make ``nodes`` the graph's nodes, dropping constants and initializers nothing reads."""
    used = {name for n in nodes for name in n.input} | {o.name for o in graph.output}
    # Replaced weights would otherwise stay in the file (twice the conv weights).
    nodes = [n for n in nodes if n.op_type != "Constant" or n.output[0] in used]
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    # Shapes recorded for rewritten intermediates would now be wrong.
    del graph.value_info[:]


# Ops that act value by value (with broadcasting): the same in [B, C, T] and [B, C, 1, T].
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Sin", "Cos", "Exp", "Log", "Sigmoid", "Tanh", "Neg",
               "Abs", "Sqrt", "Reciprocal", "Softplus", "Relu", "Identity"}


def stay_4d(model: onnx.ModelProto) -> int:
    """Remove, in place, the ``Squeeze``/``Unsqueeze`` pairs between rewritten convolutions.

    After ``conv1d_as_conv2d`` every conv sits between an ``Unsqueeze`` and a ``Squeeze``
    of axis 2, and the elementwise ops between two convs (the snakes, the residual adds)
    run on 3-D tensors. onnxruntime copies the tensor at each of those nodes. Here such
    ops run on the 4-D tensors instead, with their constants given the extra axis; a
    tensor gets its 3-D form back (one ``Squeeze``) only where an op needs it
    (reshapes, the PQMF synthesis, graph outputs), and a 3-D input that meets a 4-D
    one in an elementwise op gets one ``Unsqueeze``, after which its chain stays 4-D.

    Args:
        model: a model already rewritten by ``conv1d_as_conv2d``.
    Returns:
        how many ``Squeeze``/``Unsqueeze`` nodes fewer the graph has.
    """
    graph = model.graph
    ranks = _ranks(model)
    consts = {i.name for i in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == "Constant"}
    axis = "stay_4d_axis_2"
    graph.initializer.append(numpy_helper.from_array(np.array([2], np.int64), axis))
    before = sum(n.op_type in ("Squeeze", "Unsqueeze") for n in graph.node)
    four_d: dict[str, str] = {}  # a 3-D tensor's name -> the name of its 4-D form
    have_3d = set(consts) | {i.name for i in graph.input}
    rename: dict[str, str] = {}  # an Unsqueeze's output -> the 4-D tensor it copied
    nodes: list[onnx.NodeProto] = []

    def is_axis_2(node: onnx.NodeProto) -> bool:
        if len(node.input) != 2 or node.input[1] not in consts:
            return False
        value = _weight_tensor(graph, node.input[1])
        return value is not None and numpy_helper.to_array(value).tolist() == [2]

    def three_d(name: str) -> str:
        if name in four_d and name not in have_3d:
            nodes.append(helper.make_node("Squeeze", [four_d[name], axis], [name]))
            have_3d.add(name)
        return name

    def lifted_input(name: str) -> str | None:
        """The 4-D form of an elementwise op's input, or None when it has none."""
        if name in four_d:
            return four_d[name]
        if name in consts:
            value = numpy_helper.to_array(_weight_tensor(graph, name))
            if value.ndim < 2:
                return name
            # Right-aligned broadcasting: the new axis goes before the last (time) one.
            lifted = f"{name}_4d"
            if lifted not in consts:
                graph.initializer.append(numpy_helper.from_array(np.expand_dims(value, value.ndim - 1), lifted))
                consts.add(lifted)
            return lifted
        if ranks.get(name) in (0, 1):
            return name
        if ranks.get(name) == 3:
            four_d[name] = f"{name}_4d"
            nodes.append(helper.make_node("Unsqueeze", [name, axis], [four_d[name]]))
            return four_d[name]
        return None

    outputs = {o.name for o in graph.output}
    for node in graph.node:
        inputs = [rename.get(i, i) for i in node.input]
        if node.op_type == "Identity" and inputs[0] in consts and node.output[0] not in outputs:
            # torch's exporter shares equal constants (all alphas start at 1) through Identity.
            rename[node.output[0]] = inputs[0]
            continue
        if node.op_type == "Squeeze" and is_axis_2(node) and ranks.get(inputs[0]) == 4:
            four_d[node.output[0]] = inputs[0]
            continue
        if node.op_type == "Unsqueeze" and is_axis_2(node) and inputs[0] in four_d:
            rename[node.output[0]] = four_d[inputs[0]]
            continue
        if node.op_type == "Unsqueeze" and is_axis_2(node) and ranks.get(inputs[0]) == 3:
            # Kept, and from now on the 4-D form of its input for other ops too.
            four_d[inputs[0]] = node.output[0]
        if _liftable(node, inputs, four_d, graph, consts):
            lifted = [lifted_input(i) for i in inputs]
            if all(i is not None for i in lifted):
                out = f"{node.output[0]}_4d"
                new = helper.make_node(node.op_type, lifted, [out], name=node.name)
                new.attribute.extend(node.attribute)
                nodes.append(new)
                four_d[node.output[0]] = out
                continue
        del node.input[:]
        node.input.extend(three_d(i) for i in inputs)
        nodes.append(node)
        have_3d.update(node.output)
    for name in outputs:
        three_d(name)
    _replace_nodes(graph, nodes)
    return before - sum(n.op_type in ("Squeeze", "Unsqueeze") for n in graph.node)


def _liftable(node: onnx.NodeProto, inputs: list[str], four_d: dict[str, str], graph: onnx.GraphProto,
              consts: set[str]) -> bool:
    """An elementwise op, or a ``Slice`` of channels, that reads at least one 4-D tensor."""
    if not any(i in four_d for i in inputs):
        return False
    if node.op_type in ELEMENTWISE:
        return True
    if node.op_type == "Slice" and len(inputs) >= 4 and inputs[0] in four_d and all(i in consts for i in inputs[1:]):
        # Batch, channel and last (time) axis as 0, 1 and -1 mean the same in 3-D and 4-D;
        # 2 (time) or -2 (channels) would not.
        axes = numpy_helper.to_array(_weight_tensor(graph, inputs[3])).tolist()
        return all(a in (0, 1, -1) for a in axes)
    return False


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Each tensor's rank where ONNX shape inference knows it."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    ranks = {}
    for vi in [*g.value_info, *g.input, *g.output]:
        if vi.type.tensor_type.HasField("shape"):
            ranks[vi.name] = len(vi.type.tensor_type.shape.dim)
    return ranks
