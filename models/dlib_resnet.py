"""Load dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1.dat) as arrays.

The network is the one in dlib's examples/dnn_face_recognition_ex.cpp: a 7x7/2 convolution,
a 3x3/2 max pool, 29 residual convolutions at 32, 64, 128 and 256 channels (each batch norm
already turned into a per-channel affine), a global average pool and a 128-wide linear layer
without bias. The file is read against that architecture, layer by layer: any difference in
layer kind, shape or trailing bytes is an error, never a silently different network.

dlib serialises a network from the loss layer inwards: each wrapper writes its version and then
its sub-network, so the versions of all wrappers come first (outermost first), then the input
layer, then each layer's details on the way back out. Tag and skip wrappers (version 1) write
nothing else; computational layers (version 2, or 3 for the one on the input) write their
details followed by bookkeeping flags and cached tensors, which are read and discarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from models.dlib_format import DlibReader

FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class InputRGB:
    mean_rgb: tuple[float, float, float]
    size: int


@dataclass(frozen=True)
class Conv:
    weight: FloatArray  # (out, in, kh, kw), cross-correlation like ONNX Conv
    bias: FloatArray  # (out,)
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Affine:
    gamma: FloatArray  # (channels,)
    beta: FloatArray  # (channels,)


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class Pool:
    kind: str  # "max" | "avg"
    window: tuple[int, int]  # (0, 0) = the whole image
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Tag:
    tag: int


@dataclass(frozen=True)
class Skip:
    tag: int


@dataclass(frozen=True)
class AddPrev:
    tag: int


@dataclass(frozen=True)
class Linear:
    weight: FloatArray  # (inputs, outputs): y = x @ weight


Layer = Conv | Affine | Relu | Pool | Tag | Skip | AddPrev | Linear


@dataclass(frozen=True)
class DlibResNet:
    input: InputRGB
    layers: list[Layer]  # from the input outwards
    margin: float
    distance_threshold: float  # the loss's same-person distance (0.6 for this model)


# ---- the architecture, as a template of layer kinds from the input outwards ----------------


def _block(channels: int, stride: int) -> list[tuple[str, int]]:
    return [("con", channels), ("affine", 0), ("relu", 0), ("con", channels), ("affine", 0)]


def _ares(channels: int) -> list[tuple[str, int]]:
    return [("tag", 1), *_block(channels, 1), ("add_prev", 1), ("relu", 0)]


def _ares_down(channels: int) -> list[tuple[str, int]]:
    return [
        ("tag", 1),
        *_block(channels, 2),
        ("tag", 2),
        ("skip", 1),
        ("avg_pool", 0),
        ("add_prev", 2),
        ("relu", 0),
    ]


def architecture() -> list[tuple[str, int]]:
    """(kind, channels-or-tag) for every layer of the network, from the input outwards."""
    layers: list[tuple[str, int]] = [("con", 32), ("affine", 0), ("relu", 0), ("max_pool", 0)]
    for channels, downsampled, plain in (
        (32, False, 3),
        (64, True, 3),
        (128, True, 2),
        (256, True, 2),
        (256, True, 0),
    ):
        if downsampled:
            layers += _ares_down(channels)
        for _ in range(plain):
            layers += _ares(channels)
    layers += [("avg_pool_everything", 0), ("fc", 128)]
    return layers


# ---- reading --------------------------------------------------------------------------------


def load_dlib_resnet(path: Path) -> DlibResNet:
    reader = DlibReader(path.read_bytes(), name=path.name)
    reader.expect_int(1, "loss layer")
    loss_name = reader.read_str()
    if loss_name != "loss_metric_2":
        raise reader.fail(f"expected a loss_metric_2 network, found {loss_name!r}")
    margin = reader.read_float()
    distance_threshold = reader.read_float()

    template = architecture()
    versions = [reader.read_int() for _ in template]
    for (kind, _), version in zip(reversed(template), versions, strict=True):
        wanted = 1 if kind in ("tag", "skip") else 2
        if kind == "con" and version == 3:
            wanted = 3
        if version != wanted:
            raise reader.fail(f"layer wrapper version {version} where a {kind!r} layer belongs")
    if versions[-1] != 3:
        raise reader.fail("the innermost layer is not attached to the input")

    input_layer = _read_input(reader)
    layers: list[Layer] = []
    for index, (kind, arg) in enumerate(template):
        if kind == "tag":
            layers.append(Tag(arg))
            continue
        if kind == "skip":
            layers.append(Skip(arg))
            continue
        layers.append(_read_details(reader, kind, arg))
        _skip_bookkeeping(reader, on_input=index == 0)
    if not reader.at_end:
        raise reader.fail("unexpected bytes after the last layer")
    return DlibResNet(input_layer, layers, margin, distance_threshold)


def _read_input(reader: DlibReader) -> InputRGB:
    name = reader.read_str()
    if name != "input_rgb_image_sized":
        raise reader.fail(f"expected input_rgb_image_sized, found {name!r}")
    mean = (reader.read_float(), reader.read_float(), reader.read_float())
    rows, cols = reader.read_int(), reader.read_int()
    if rows != cols:
        raise reader.fail(f"expected a square input, found {rows}x{cols}")
    return InputRGB(mean, rows)


def _skip_bookkeeping(reader: DlibReader, *, on_input: bool) -> None:
    for _ in range(3):  # setup called, gradient stale, output and gradient disabled
        reader.read_bool()
    for _ in range(3):  # x_grad, cached_output, params_grad (grad_final on the input layer)
        reader.read_tensor()
    if on_input:
        reader.read_int()  # sample expansion factor


def _read_details(reader: DlibReader, kind: str, arg: int) -> Layer:
    expected = {
        "con": "con_4",
        "affine": "affine_",
        "relu": "relu_",
        "max_pool": "max_pool_2",
        "avg_pool": "avg_pool_2",
        "avg_pool_everything": "avg_pool_2",
        "add_prev": "add_prev_",
        "fc": "fc_2",
    }[kind]
    name = reader.read_str()
    if name != expected:
        raise reader.fail(f"expected a {expected} layer, found {name!r}")
    if kind == "con":
        return _read_conv(reader, arg)
    if kind == "affine":
        return _read_affine(reader)
    if kind == "relu":
        return Relu()
    if kind == "add_prev":
        return AddPrev(arg)
    if kind == "fc":
        return _read_fc(reader, arg)
    pool = Pool(
        "max" if kind == "max_pool" else "avg",
        window=(reader.read_int(), reader.read_int()),
        stride=(reader.read_int(), reader.read_int()),
        padding=(reader.read_int(), reader.read_int()),
    )
    if (kind == "avg_pool_everything") != (pool.window == (0, 0)):
        raise reader.fail(f"pool window {pool.window} does not fit a {kind} layer")
    return pool


def _read_conv(reader: DlibReader, channels: int) -> Conv:
    params = reader.read_tensor().reshape(-1)
    filters = reader.read_int()
    kernel = (reader.read_int(), reader.read_int())
    stride = (reader.read_int(), reader.read_int())
    padding = (reader.read_int(), reader.read_int())
    weight_dims = reader.read_alias_tensor()
    bias_dims = reader.read_alias_tensor()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        reader.read_float()
    if filters != channels or weight_dims[0] != filters or weight_dims[2:] != kernel:
        raise reader.fail(f"convolution of {filters} {kernel} filters where {channels} belong")
    weight_size = int(np.prod(weight_dims))
    bias_size = int(np.prod(bias_dims))
    if bias_size != filters or params.size != weight_size + bias_size:
        raise reader.fail(f"convolution parameters of size {params.size} do not fit {weight_dims}")
    return Conv(
        weight=params[:weight_size].reshape(weight_dims).copy(),
        bias=params[weight_size:].copy(),
        stride=stride,
        padding=padding,
    )


def _read_affine(reader: DlibReader) -> Affine:
    params = reader.read_tensor().reshape(-1)
    gamma_size = int(np.prod(reader.read_alias_tensor()))
    beta_size = int(np.prod(reader.read_alias_tensor()))
    mode = reader.read_int()
    if mode != 0:
        raise reader.fail(f"affine layer in mode {mode}; only per-channel (conv) mode is known")
    if gamma_size != beta_size or params.size != gamma_size + beta_size:
        raise reader.fail("affine parameters do not split into gamma and beta")
    return Affine(gamma=params[:gamma_size].copy(), beta=params[gamma_size:].copy())


def _read_fc(reader: DlibReader, outputs: int) -> Linear:
    num_outputs, num_inputs = reader.read_int(), reader.read_int()
    params = reader.read_tensor().reshape(-1)
    weight_dims = reader.read_alias_tensor()
    reader.read_alias_tensor()  # the bias slice, empty without a bias
    bias_mode = reader.read_int()
    for _ in range(4):
        reader.read_float()
    if num_outputs != outputs or bias_mode != 1 or params.size != num_inputs * num_outputs:
        raise reader.fail(
            f"expected a {outputs}-wide fc layer without bias, found {num_outputs} outputs, "
            f"bias mode {bias_mode}, {params.size} parameters"
        )
    del weight_dims
    return Linear(weight=params.reshape(num_inputs, num_outputs).copy())
