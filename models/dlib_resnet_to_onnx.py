"""Convert dlib's face-recognition ResNet into an ONNX model with the same numbers.

The ONNX model takes what the face library produces, aligned chips as uint8 RGB in NHWC
(`chips`, [N, 150, 150, 3]), does dlib's input normalisation ((pixel - mean) / 256) in the
graph, and returns dlib's 128-d descriptor (`descriptor`, [N, 128]), so L2 distances are
directly comparable with dlib's (same person below about 0.6).

Each affine layer (a frozen batch norm) is folded into the convolution before it. dlib's
add_prev adds tensors of different sizes by zero-padding the smaller at the far end of every
dimension (channels, rows, columns); the graph does the same with explicit Pad nodes. The
output bytes are deterministic: no timestamps, fixed names, fixed opset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from models.dlib_resnet import (
    AddPrev,
    Affine,
    Conv,
    DlibResNet,
    Linear,
    Pool,
    Relu,
    Skip,
    Tag,
    load_dlib_resnet,
)
from models.errors import ModelConversionError
from storesight_common.files import replacing

OPSET = 17
INPUT_NAME = "chips"
OUTPUT_NAME = "descriptor"
PRODUCER = "storesight.models.dlib_resnet_to_onnx"


@dataclass
class _Value:
    name: str
    shape: tuple[int, int, int]  # channels, rows, columns


@dataclass
class _Graph:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    counter: int = 0

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}_{self.counter}"

    def constant(self, stem: str, array: NDArray[Any]) -> str:
        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attrs: Any) -> str:
        output = self.fresh(stem)
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


def _out_size(size: int, window: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - window) // stride + 1


def build_onnx(net: DlibResNet) -> onnx.ModelProto:
    g = _Graph()
    size = net.input.size
    as_float = g.node("Cast", [INPUT_NAME], "as_float", to=TensorProto.FLOAT)
    nchw = g.node("Transpose", [as_float], "nchw", perm=[0, 3, 1, 2])
    mean = np.array(net.input.mean_rgb, dtype=np.float32).reshape(1, 3, 1, 1)
    centred = g.node("Sub", [nchw, g.constant("mean_rgb", mean)], "centred")
    scale = np.array(1.0 / 256.0, dtype=np.float32)  # exact: a power of two
    current = _Value(g.node("Mul", [centred, g.constant("scale", scale)], "input"), (3, size, size))

    tags: dict[int, _Value] = {}
    layers = net.layers
    index = 0
    while index < len(layers):
        layer = layers[index]
        if isinstance(layer, Conv):
            following = layers[index + 1] if index + 1 < len(layers) else None
            folded = isinstance(following, Affine)
            current = _conv(g, current, layer, following if isinstance(following, Affine) else None)
            index += 2 if folded else 1
            continue
        if isinstance(layer, Affine):
            raise ModelConversionError("an affine layer that does not follow a convolution")
        if isinstance(layer, Relu):
            current = _Value(g.node("Relu", [current.name], "relu"), current.shape)
        elif isinstance(layer, Pool):
            current = _pool(g, current, layer)
        elif isinstance(layer, Tag):
            tags[layer.tag] = current
        elif isinstance(layer, Skip):
            current = tags[layer.tag]
        elif isinstance(layer, AddPrev):
            current = _add_padded(g, current, tags[layer.tag])
        elif isinstance(layer, Linear):
            flat = g.node("Flatten", [current.name], "flatten", axis=1)
            inputs = current.shape[0] * current.shape[1] * current.shape[2]
            if layer.weight.shape[0] != inputs:
                raise ModelConversionError(
                    f"fc layer takes {layer.weight.shape[0]} inputs, the network gives {inputs}"
                )
            weight = g.constant("fc_weight", layer.weight)
            current = _Value(g.node("MatMul", [flat, weight], "fc"), (layer.weight.shape[1], 1, 1))
        index += 1

    g.nodes.append(helper.make_node("Identity", [current.name], [OUTPUT_NAME], name=OUTPUT_NAME))
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", size, size, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", current.shape[0]])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        producer_name=PRODUCER,
        producer_version="1",
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = 8
    model.doc_string = (
        "dlib face recognition ResNet v1 (public domain, CC0) converted by StoreSight. "
        "Input: aligned 150x150 RGB uint8 chips (dlib 5-point template, padding 0.25), NHWC. "
        "Output: 128-d descriptors; same person when the L2 distance is below ~0.6."
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def _conv(g: _Graph, value: _Value, conv: Conv, affine: Affine | None) -> _Value:
    weight, bias = conv.weight, conv.bias
    if weight.shape[1] != value.shape[0]:
        raise ModelConversionError(
            f"convolution expects {weight.shape[1]} channels, the network gives {value.shape[0]}"
        )
    if affine is not None:
        weight = (weight * affine.gamma.reshape(-1, 1, 1, 1)).astype(np.float32)
        bias = (bias * affine.gamma + affine.beta).astype(np.float32)
    kh, kw = weight.shape[2:]
    (sy, sx), (py, px) = conv.stride, conv.padding
    name = g.node(
        "Conv",
        [value.name, g.constant("conv_weight", weight), g.constant("conv_bias", bias)],
        "conv",
        kernel_shape=[kh, kw],
        strides=[sy, sx],
        pads=[py, px, py, px],
    )
    _, rows, cols = value.shape
    return _Value(name, (weight.shape[0], _out_size(rows, kh, sy, py), _out_size(cols, kw, sx, px)))


def _pool(g: _Graph, value: _Value, pool: Pool) -> _Value:
    channels, rows, cols = value.shape
    if pool.window == (0, 0):
        if pool.kind != "avg":
            raise ModelConversionError("only average pooling over the whole image is supported")
        return _Value(g.node("GlobalAveragePool", [value.name], "global_avg"), (channels, 1, 1))
    (ky, kx), (sy, sx), (py, px) = pool.window, pool.stride, pool.padding
    if (py, px) != (0, 0):
        # dlib excludes padding from averages and pads max pools with -inf; ONNX can match
        # both, but this network has no padded pools, so the case is refused rather than guessed.
        raise ModelConversionError(f"padded pooling {pool} is not supported")
    op = "MaxPool" if pool.kind == "max" else "AveragePool"
    name = g.node(op, [value.name], pool.kind + "_pool", kernel_shape=[ky, kx], strides=[sy, sx])
    return _Value(name, (channels, _out_size(rows, ky, sy, 0), _out_size(cols, kx, sx, 0)))


def _add_padded(g: _Graph, a: _Value, b: _Value) -> _Value:
    shape = tuple(max(x, y) for x, y in zip(a.shape, b.shape, strict=True))
    names = [_pad_to(g, value, shape) for value in (a, b)]
    return _Value(g.node("Add", names, "add"), (shape[0], shape[1], shape[2]))


def _pad_to(g: _Graph, value: _Value, shape: tuple[int, ...]) -> str:
    extra = [want - have for want, have in zip(shape, value.shape, strict=True)]
    if not any(extra):
        return value.name
    pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)  # begins (N,C,H,W), then ends
    return g.node("Pad", [value.name, g.constant("pads", pads)], "pad", mode="constant")


def convert(source: Path, target: Path) -> None:
    """Read dlib's .dat file at `source` and write the ONNX model to `target` atomically."""
    model = build_onnx(load_dlib_resnet(source))
    target.parent.mkdir(parents=True, exist_ok=True)
    with replacing(target) as temp:
        temp.write_bytes(model.SerializeToString(deterministic=True))
