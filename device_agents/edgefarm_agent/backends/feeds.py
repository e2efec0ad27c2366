"""A job's data as the model takes it, and the model's outputs as the user asked for them.

Input datasets hold what the SOURCE model takes: one array per source input, samples stacked on axis 0.
When the job runs a compiled target (the lease carries its CompileResult), each target input is fed from the
source input it came from (`TensorInfo.source_name`), quantized and transposed with the target's own
parameters (edgefarm.tensors), and each output is brought back to float32 in the source layout under the
source name. Every such step is recorded as a sentence for the job's `conversions`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from edgefarm.tensors import from_target, to_target
from edgefarm.wire import CompileResult, TensorInfo

from edgefarm_agent.backends import JobFailure

Feeds = dict[str, np.ndarray]
# Integers wider than 16 bits are usually indices or token ids: keep random values small and valid.
WIDE_INT_RANGE = (0, 100)


def read_dataset(path: Path) -> dict[str, np.ndarray]:
    """The job's input dataset (.npz, never unpickled): one array per input, samples on axis 0."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise JobFailure(f"cannot read the input dataset: {exc}") from exc


def random_feeds(inputs: Sequence[TensorInfo], *, seed: int = 0) -> Feeds:
    """Seeded random inputs of each tensor's dtype and shape (symbolic dimensions become 1): floats uniform
    in [0, 1), 8/16-bit integers over their whole range, wider integers in [0, 100)."""
    rng = np.random.default_rng(seed)
    feeds: Feeds = {}
    for info in inputs:
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in info.shape]
        dtype = np.dtype(info.dtype)
        if dtype.kind == "f":
            feeds[info.name] = rng.random(shape, dtype=np.float32).astype(dtype)
        elif dtype.kind == "b":
            feeds[info.name] = rng.integers(0, 2, shape).astype(bool)
        elif dtype.kind in "iu":
            low, high = (np.iinfo(dtype).min, np.iinfo(dtype).max) if dtype.itemsize <= 2 else WIDE_INT_RANGE
            feeds[info.name] = rng.integers(low, high, shape, endpoint=True).astype(dtype)
        else:
            raise JobFailure(f"cannot make random data for input {info.name!r} of type {dtype}; "
                             "give the job an input dataset")
    return feeds


def dataset_feeds(dataset: Mapping[str, np.ndarray], model_inputs: Sequence[TensorInfo],
                  compile_result: CompileResult | None) -> tuple[list[Feeds], list[str]]:
    """One feed dict per sample, and the conversions applied."""
    count = _sample_count(dataset)
    model_names = [info.name for info in model_inputs]
    if compile_result is None:
        return _feeds_as_given(dataset, model_inputs, count)
    sources = {info.name: info for info in compile_result.source_inputs}
    feeds: list[Feeds] = [{} for _ in range(count)]
    conversions: list[str] = []
    for target in compile_result.target_inputs:
        if target.name not in model_names:
            raise JobFailure(f"the compile job recorded an input {target.name!r} that the model does not have "
                             f"(it has {', '.join(model_names)})")
        source_name = target.source_name or target.name
        if source_name not in dataset:
            raise JobFailure(f"the input dataset has no {source_name!r}, which the model's input {target.name!r} "
                             f"is fed from; it has {', '.join(dataset)}")
        source = sources.get(source_name)
        samples = _with_batch_axis(dataset[source_name], source.shape if source else target.shape)
        for i in range(count):
            feeds[i][target.name] = to_target(samples[i], target)
        conversions.append(_describe(source_name, samples[0], target.name, feeds[0][target.name], target,
                                     into_target=True))
    return feeds, conversions


def stack_outputs(samples: Sequence[Feeds], compile_result: CompileResult | None) -> tuple[Feeds, list[str]]:
    """Per-sample outputs → one array per output, samples on axis 0, named and shaped as the source's."""
    if compile_result is None:
        return {name: np.stack([s[name] for s in samples]) for name in samples[0]}, []
    outputs: Feeds = {}
    conversions: list[str] = []
    for target in compile_result.target_outputs:
        if target.name not in samples[0]:
            raise JobFailure(f"the compile job recorded an output {target.name!r} that the model does not have "
                             f"(it has {', '.join(samples[0])})")
        source_name = target.source_name or target.name
        outputs[source_name] = np.stack([from_target(s[target.name], target) for s in samples])
        conversions.append(_describe(target.name, samples[0][target.name], source_name, outputs[source_name][0],
                                     target, into_target=False))
    return outputs, conversions


def _feeds_as_given(dataset: Mapping[str, np.ndarray], model_inputs: Sequence[TensorInfo],
                    count: int) -> tuple[list[Feeds], list[str]]:
    """No compile record: the model is the source, fed by its own input names. Only a float width is
    adapted (float64 data for a float32 input), since numpy users make float64 without meaning to."""
    conversions: list[str] = []
    arrays: Feeds = {}
    for info in model_inputs:
        if info.name not in dataset:
            raise JobFailure(f"the input dataset has no {info.name!r}, an input of the model; it has "
                             f"{', '.join(dataset)}")
        data = dataset[info.name]
        wanted = np.dtype(info.dtype)
        if data.dtype != wanted and data.dtype.kind == "f" and wanted.kind == "f":
            conversions.append(f"{info.name}: {data.dtype} → {wanted}")
            data = data.astype(wanted)
        arrays[info.name] = data
    return [{name: data[i] for name, data in arrays.items()} for i in range(count)], conversions


def _sample_count(dataset: Mapping[str, np.ndarray]) -> int:
    counts = {name: len(data) for name, data in dataset.items()}
    if not counts or len(set(counts.values())) != 1 or 0 in counts.values():
        raise JobFailure(f"the input dataset needs the same, non-zero number of samples per input; got {counts}")
    return next(iter(counts.values()))


def _with_batch_axis(samples: np.ndarray, shape: Sequence[int | str]) -> np.ndarray:
    """Samples stored without the model's leading batch dimension of 1 (a (3, H, W) image for a (1, 3, H, W)
    input) get it back, so layouts line up for the transpose."""
    if samples.ndim == len(shape) and shape and shape[0] == 1:
        return samples[:, None]
    return samples


def _describe(from_name: str, before: np.ndarray, to_name: str, after: np.ndarray, target: TensorInfo, *,
              into_target: bool) -> str:
    """`image → input_1: float32 NCHW [1, 3, 32, 32] → int8 NHWC [1, 32, 32, 3] (scale 0.00392, zero point -128)`"""
    names = from_name if from_name == to_name else f"{from_name} → {to_name}"
    transposed = target.layout == "NHWC" and before.ndim == 4
    layouts = ("NCHW", "NHWC") if into_target else ("NHWC", "NCHW")
    left = f"{before.dtype}{' ' + layouts[0] if transposed else ''} {list(before.shape)}"
    right = f"{after.dtype}{' ' + layouts[1] if transposed else ''} {list(after.shape)}"
    if left == right:
        return f"{names}: {left}, unchanged"
    q = target.quantization
    scale = f" (scale {q.scale:.6g}, zero point {q.zero_point})" if q else ""
    return f"{names}: {left} → {right}{scale}"
