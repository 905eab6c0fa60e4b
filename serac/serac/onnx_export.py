"""A scope-classifier head (the embedder or the cross-encoder) exported to ONNX and opened in an
ONNX Runtime session, for inference on CPU.

The whole sentence-transformers module stack (transformer, pooling, normalisation or the scoring
layer) is traced by `torch.onnx` into one graph; int8 then quantises its matrix weights per output
channel (`onnxruntime.quantization.quantize_dynamic`). sentence-transformers' own ONNX backend
needs `optimum`, whose releases pin transformers below the 5.x this project uses, so the export
is done here with torch and onnxruntime only.

Exports are kept in the cache folder (`serac.core.hub.cache_dir()`/onnx) under a digest of the
head's weights, the variant and the library versions, so an editor opened again starts its
session in well under a second instead of exporting (seconds for MiniLM). A cached file that
ONNX Runtime cannot read is exported again.

Install with `pip install 'serac-editing[onnx]'` (onnxruntime and onnx).
"""

import hashlib
import importlib.util
import logging
import os
import tempfile
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from serac.core.hub import cache_dir

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'serac-editing[onnx]'"
_OPSET = 17


def onnx_available() -> bool:
    """Whether onnxruntime and onnx are installed (the `onnx` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


class _Traced(nn.Module):
    """Token tensors in, one output of a sentence-transformers module stack out: its traceable form."""

    def __init__(self, head: nn.Module, input_names: list[str], output: str):
        super().__init__()
        self.head = head
        self.input_names = input_names
        self.output = output

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.head(dict(zip(self.input_names, tensors)))[self.output]


class OnnxHead:
    """An ONNX Runtime session running one head: `run(features)` takes the head's `preprocess`
    output and returns its output as a numpy array."""

    def __init__(self, session, input_names: list[str]):
        self.session = session
        self.input_names = input_names

    def run(self, features: dict):
        return self.session.run(None, {name: features[name].cpu().numpy().astype(np.int64) for name in self.input_names})[0]


def onnx_session(head: nn.Module, sample: dict, output: str, int8: bool = False, threads: int | None = None) -> OnnxHead:
    """An ONNX Runtime session running `head`.

    `sample`: the head's `preprocess` of two texts or pairs (the graph has dynamic batch and
    length); `output`: the key of the head's output to return; `threads`: intra-op threads (None:
    as many as torch uses, which follows OMP_NUM_THREADS)."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(f"an ONNX backend needs onnxruntime and onnx: {INSTALL_HINT}") from error
    input_names = [name for name, value in sample.items() if isinstance(value, torch.Tensor)]
    path = _exported(head, sample, input_names, output, int8)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    # Idle pool threads would spin for a while after each run, taking the cores from what follows
    # in the same process (the cross-encoder and the language model of a query): a one-prompt
    # torch encode run between ONNX ones took 74.5 ms with spinning on, 19.7 with it off
    # (benchmarks/serac/README.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - a damaged cache file: export again
        log.warning("ONNX Runtime cannot read %s (%s); exporting it again", path, error)
        path.unlink(missing_ok=True)
        path = _exported(head, sample, input_names, output, int8)
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return OnnxHead(session, input_names)


def _exported(head: nn.Module, sample: dict, input_names: list[str], output: str, int8: bool) -> Path:
    """The cached ONNX file of `head`, exported (and quantised) first if it is not there."""
    folder = cache_dir() / "onnx"
    path = folder / f"{_digest(head, input_names, output, int8)}.onnx"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as scratch:
        graph = Path(scratch) / "head.onnx"
        _export(head, sample, input_names, output, graph)
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = Path(scratch) / "head-int8.onnx"
            quantize_dynamic(graph, quantized, weight_type=QuantType.QInt8, per_channel=True)
            graph = quantized
        os.replace(graph, path)  # whole or absent: another process may export the same head meanwhile
    return path


def _digest(head: nn.Module, input_names: list[str], output: str, int8: bool) -> str:
    """Names what the exported file depends on: the weights, the graph's inputs and output, the variant, the libraries."""
    digest = hashlib.sha256(repr((input_names, output, int8, _OPSET, torch.__version__, version("onnx"), version("onnxruntime"))).encode())
    digest.update(repr(head).encode())  # the modules and their settings (pooling mode, normalisation)
    for name, tensor in sorted(head.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def _export(head: nn.Module, sample: dict, input_names: list[str], output: str, path: Path) -> None:
    """Write `head` as an ONNX graph with dynamic batch and length."""
    module = _Traced(head, input_names, output).eval()
    was_training = head.training
    dynamic = {name: {0: "batch", 1: "tokens"} for name in input_names}
    with warnings.catch_warnings():
        # The tracer warns of shape checks it records as constants; the tests check that the
        # graph gives the torch outputs for other batch sizes and lengths.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                tuple(sample[name].to(next(head.parameters()).device) for name in input_names),
                str(path),
                input_names=input_names,
                output_names=[output],
                dynamic_axes={**dynamic, output: {0: "batch"}},
                opset_version=_OPSET,
                dynamo=False,  # the dynamo exporter needs onnxscript; the tracer is exact for these heads
            )
        finally:
            head.train(was_training)  # the exporter restores the wrapper's mode, not the head's
