"""Moving tensors between a source model's terms and a compiled target's, using what the compile job recorded.

A compiled model may take int8 where the source took float32, or NHWC where it took NCHW. Users speak the
source's language; these two functions translate with the target's own quantization parameters and layout.
"""

from __future__ import annotations

import numpy as np

from edgefarm.wire import TensorInfo


def to_target(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    """A source-layout float array → what the target tensor takes (transposed, quantized, cast)."""
    if info.layout == "NHWC" and x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    if info.quantization:
        q = info.quantization
        limits = np.iinfo(info.dtype)
        x = np.clip(np.round(x / q.scale + q.zero_point), limits.min, limits.max)
    return np.ascontiguousarray(x.astype(info.dtype))


def from_target(y: np.ndarray, info: TensorInfo) -> np.ndarray:
    """A target tensor's value → float32 in the source's layout."""
    if info.quantization:
        y = (y.astype(np.float32) - info.quantization.zero_point) * info.quantization.scale
    if info.layout == "NHWC" and y.ndim == 4:
        y = y.transpose(0, 3, 1, 2)
    return y.astype(np.float32)
