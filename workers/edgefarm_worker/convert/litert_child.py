"""Runs a compiled TFLite model for verification, in a child process of the worker (child.py says why).

LiteRT aborts on some models the TFLite converter writes: a full-INT8 ResNet-18 from the corpus aborts in
allocate_tensors with the builtin kernels (SIGABRT). The cost, measured on MobileNetV2 INT8: ~0.5 s and 86 MB per
attempt (a Python start, the imports, the four samples and the XNNPACK check).

    python -m edgefarm_worker.convert.litert_child MODEL FEEDS.npz OUTPUTS.npz

FEEDS.npz holds "<sample>/<tensor name>" arrays in the target's terms; OUTPUTS.npz gets the same for every output
tensor. stdout: one JSON object, {"xnnpack": null or the reason LiteRT's default CPU delegate refused the model}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .child import stage as _stage
from .child import load_samples, save_samples, start
from .interface import first_line  # light: `-m` imports this package first in any case


def run(model: Path, feeds: list[dict[str, np.ndarray]]) -> tuple[list[dict[str, np.ndarray]], str | None]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Builtin kernels without the default XNNPACK delegate: the numbers the model's ops define.
    _stage("loading the model")
    interpreter = Interpreter(model_path=str(model), num_threads=1,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    _stage("allocating its tensors with the builtin kernels")
    interpreter.allocate_tensors()
    outputs = []
    for sample in feeds:
        _feed(interpreter, sample)
        _stage("running it with the builtin kernels")
        interpreter.invoke()
        outputs.append({d["name"]: interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()})
    return outputs, _xnnpack_refusal(model, feeds[0])


def _feed(interpreter, sample: dict[str, np.ndarray]) -> None:
    index = {d["name"]: d["index"] for d in interpreter.get_input_details()}
    for name, value in sample.items():
        interpreter.set_tensor(index[name], value)


def _xnnpack_refusal(model: Path, sample: dict[str, np.ndarray]) -> str | None:
    """XNNPACK is what LiteRT runs a model with on CPUs by default (the farm's agents included)."""
    from ai_edge_litert.interpreter import Interpreter

    _stage("running it with XNNPACK")
    try:
        interpreter = Interpreter(model_path=str(model), num_threads=1)
        interpreter.allocate_tensors()
        _feed(interpreter, sample)
        interpreter.invoke()
    except (RuntimeError, ValueError) as exc:
        return first_line(exc, 300)
    return None


def main() -> None:
    start()
    model, feeds_path, outputs_path = map(Path, sys.argv[1:4])
    outputs, xnnpack = run(model, load_samples(feeds_path))
    save_samples(outputs_path, outputs)
    print(json.dumps({"xnnpack": xnnpack}))


if __name__ == "__main__":
    main()
