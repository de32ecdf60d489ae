"""The one place onnxruntime sessions are created: providers and threads are chosen here."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from facelib.config import RuntimeSettings
from models.errors import ModelCorruptError


def create_session(path: Path, settings: RuntimeSettings, *, name: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped errors for bad files
        raise ModelCorruptError(f"model {name!r} at {path} could not be loaded: {error}") from error
