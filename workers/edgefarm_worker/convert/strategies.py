"""The conversion strategies a compile tries, in order, until one gives a target that verifies.

Each strategy changes one thing a converter expert would change when the previous attempt failed or converted
wrongly; the order is measured on the corpus (bench/corpus.py; docs/compile.md has the figures). A strategy that
cannot apply to a request (an opset upgrade of a model already at that opset, onnx2tf flags for an ONNX target)
is left out of that request's chain rather than tried for nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import onnx
from edgefarm.options import CompileOptions
from edgefarm.wire import ConversionAttempt, strategy_deaths

from . import rewrites

# onnx2tf's pseudo-operators: decompositions into builtin TFLite ops for ops TFLite lacks (tf.Erf, behind every
# exact GELU, is neither builtin nor allowed as Flex on the farm's devices). onnx2tf matches the lowercase names.
PSEUDO_OPS = {"Erf": "erf", "Gelu": "gelu", "Asin": "asin", "Acos": "acos", "Atan": "atan", "Abs": "abs",
              "PRelu": "prelu", "LeakyRelu": "leakyrelu", "Pow": "power", "Neg": "neg", "HardSwish": "hardswish"}
RECURRENT_OPS = {"LSTM", "GRU", "RNN"}
# ONNX opset the upgrade strategy converts to: the newest onnx2tf 1.29 covers fully.
UPGRADE_OPSET = 17


@dataclass(frozen=True)
class Strategy:
    name: str
    why: str  # one line for docs and logs: what it changes (besides the earlier strategies' onnx2tf rewrites)
    simplifier: Literal["onnxsim", "onnxruntime"] = "onnxsim"
    upgrade_opset: int | None = None
    onnx2tf: dict = field(default_factory=dict)  # extra onnx2tf.convert arguments (TFLite targets only)
    tflite_only: bool = False
    applies: Callable[[onnx.ModelProto], bool] = lambda model: True  # noqa: E731  (worth trying on this graph?)
    rewrite: Callable[[onnx.ModelProto], onnx.ModelProto] | None = None  # after simplification (rewrites.py)


def _op_types(model: onnx.ModelProto) -> set[str]:
    return {node.op_type for node in model.graph.node}


def _grouped_conv(model: onnx.ModelProto) -> bool:
    return any(node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute)
               for node in model.graph.node)


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


# Measured on the corpus (docs/compile.md): grouped convolutions come out of the default path without a
# signature (ShuffleNetV2, RegNet, GhostNet, Xception, SSDlite); every transformer with exact GELU fails on tf.Erf;
# an opset-11 Softmax over a 4-D tensor's channel axis converts wrongly and the opset upgrade rewrites it;
# onnx2tf's Add turns residual sums channel-first, which SimpleBaseline's deconvolutions and ShuffleNetV1's
# grouped convolutions do not survive (rewrites.residual_adds_as_sum); TensorFlow's calibrator segfaults on the
# recurrent loops of an LSTM, a bidirectional GRU and a CRNN at INT8 (in quantize_child, so the chain goes on), and
# unrolled they quantize to 31-43 dB SNR.
CHAIN: tuple[Strategy, ...] = (
    Strategy("default", "onnxsim, then onnx2tf builds the Keras graph and the TFLite converter writes the target"),
    Strategy("unroll-rnn", "recurrent loops (LSTM, GRU, RNN) unrolled into per-step ops (onnx2tf "
                           "enable_rnn_unroll): TensorFlow's INT8 calibrator crashes on the loop form",
             onnx2tf={"enable_rnn_unroll": True}, tflite_only=True,
             applies=lambda model: bool(_op_types(model) & RECURRENT_OPS)),
    Strategy("split-grouped-conv", "grouped convolutions split into per-group convolutions and a concat "
                                   "(onnx2tf disable_group_convolution)",
             onnx2tf={"disable_group_convolution": True}, tflite_only=True, applies=_grouped_conv),
    Strategy("pseudo-ops", "ops TFLite lacks or converts inexactly (" + ", ".join(PSEUDO_OPS) + ") replaced by "
                           "decompositions into builtin ops (onnx2tf replace_to_pseudo_operators)",
             onnx2tf={"replace_to_pseudo_operators": sorted(PSEUDO_OPS.values())}, tflite_only=True,
             applies=lambda model: bool(_op_types(model) & set(PSEUDO_OPS))),
    Strategy("opset-upgrade", f"the graph upgraded to opset {UPGRADE_OPSET} first: older opsets spell some ops "
                              "(Softmax over a flattened tail, Split, Squeeze, Resize) in forms the converter "
                              "mishandles", upgrade_opset=UPGRADE_OPSET,
             applies=lambda model: _opset(model) < UPGRADE_OPSET),
    Strategy("onnxruntime-folding", "ONNX Runtime's constant folding instead of onnxsim (for graphs onnxsim "
                                    "cannot process or rewrites into something the converter mishandles)",
             simplifier="onnxruntime"),
    Strategy("residual-add-as-sum", "residual Adds (two computed tensors of one shape) written as Sum: onnx2tf's "
                                    "Add can leave them channel-first, which deconvolutions and some grouped "
                                    "convolutions after them convert wrongly",
             tflite_only=True, applies=lambda model: bool(rewrites.residual_adds(model)),
             rewrite=rewrites.residual_adds_as_sum),
)
BY_NAME = {s.name: s for s in CHAIN}


def chain(options: CompileOptions, model: onnx.ModelProto, first: str | None = None) -> list[Strategy]:
    """The strategies worth trying on this request, in the measured order; `first` (the strategy that produced a
    verified target for the same model and options before) goes ahead of the rest.

    onnx2tf rewrites accumulate along the chain: a later strategy keeps the earlier ones' rewrites, because a
    model often needs several (ConvNeXt: its grouped convolutions split and its GELU's Erf replaced)."""
    applicable = [s for s in CHAIN if not (s.tflite_only and options.target_runtime != "tflite") and s.applies(model)]
    merged, accumulated = [], {}
    for strategy in applicable:
        accumulated = {**accumulated, **strategy.onnx2tf}
        merged.append(replace(strategy, onnx2tf=accumulated))
    merged.sort(key=lambda s: s.name != first)  # stable: the rest keep their order
    return merged


# A strategy whose process died under it this many times is not tried again: once may be an operator's restart,
# twice is the converter (a segfault, TensorFlow taken by the OOM killer).
CRASH_LIMIT = 2
CRASHED = (f"the worker process died during this strategy {CRASH_LIMIT} times (a converter segfault or the "
           "out-of-memory killer); not tried again")


def crashed(messages: list[str]) -> list[str]:
    """From a job's event messages in order: the strategies a process died in CRASH_LIMIT times or more."""
    return [name for name, count in strategy_deaths(messages).items() if name in BY_NAME and count >= CRASH_LIMIT]


def failure_table(attempts: list[ConversionAttempt]) -> str:
    """The reason a compile FAILED: every strategy, what it said, one per line."""
    lines = [f"no conversion strategy produced a verified target ({len(attempts)} tried):"]
    lines += [f"- {a.strategy}: {a.outcome}: {a.reason}" for a in attempts]
    return "\n".join(lines)
