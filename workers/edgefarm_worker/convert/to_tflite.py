"""ONNX → TFLite: onnx2tf builds the Keras model in process, then one TFLiteConverter run makes exactly the variant
asked for (the onnx2tf CLI writes a SavedModel and every variant: float32, float16, dynamic range, integer, full
integer, int16 ...).

What onnx2tf does to layout and names (1.29.24, read from its source and checked in tests/worker):
- 3/4/5-D inputs become channel-last (NWC/NHWC/NDHWC) unless named in keep_ncw_or_nchw_or_ncdhw_input_names,
  in which case the Keras input keeps the ONNX shape and onnx2tf transposes inside. We name every input that
  must keep the source layout there, and leave out the --force_channel_last_input ones.
- Outputs come out in whatever layout onnx2tf's graph ends in: a conv output is NHWC, an output after a
  Reshape/Flatten usually keeps the ONNX shape. We find out per output (shape, and numbers when NCHW and NHWC
  shapes are equal) and transpose in a serving function so each output has the layout we promise.
- Keras input names are the ONNX names with ':' → '__'; TFLite tensor names are the converter's
  (`serving_default_<key>:0`, `StatefulPartitionedCall:<i>`), and the TFLite output order is not the ONNX order.
  The serving function's signature keys map every target tensor back to its source name.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from edgefarm.options import CompileOptions
from edgefarm.wire import TensorInfo

from . import calibration as calib
from . import child
from .converter_log import ConverterLog
from .interface import ConversionError, ConverterCrashed
from .onnx_prep import PreparedOnnx
from .tensors import channel_first, channel_last, tflite_io

# Seconds for the calibrating child (quantize_child); the corpus's largest INT8 conversions take ~100 s.
QUANTIZE_TIMEOUT = 1800.0
# What onnx2tf prints after any failure: advice for its own CLI flags, which our users cannot pass.
_ONNX2TF_CLI_ADVICE = (
    "The trace log is below", "input_onnx_file_path:", "onnx_op_name:", "Read this and deal with it",
    "Alternatively, if the input OP", "If the input OP of ONNX", "Also, for models that include",
)


def versions() -> str:
    import onnx2tf
    import tensorflow as tf

    return f"onnx2tf {onnx2tf.__version__} / tensorflow {tf.__version__}"


def convert(
    prepared: PreparedOnnx,
    options: CompileOptions,
    calibration: dict[str, np.ndarray] | None,
    workdir: Path,
    log: ConverterLog,
    onnx2tf_args: dict | None = None,
) -> tuple[Path, list[TensorInfo], list[TensorInfo]]:
    """The target in workdir/model.tflite; `onnx2tf_args` are the conversion strategy's extra onnx2tf arguments."""
    import onnx2tf  # noqa: F401  (first: it sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
    import tf_keras

    channel_last_inputs = _channel_last_names(options.force_channel_last_input, prepared.inputs, "input")
    channel_last_outputs = _channel_last_names(options.force_channel_last_output, prepared.outputs, "output")
    calib.write_onnx2tf_sample(workdir, calibration, prepared.inputs)
    try:
        with _cwd(workdir):
            keras_model = _keras_model(prepared, channel_last_inputs, workdir, log, onnx2tf_args or {})
            serving, input_keys, output_keys = _serving_function(
                keras_model, prepared, channel_last_inputs, channel_last_outputs, calibration, log
            )
            flatbuffer = _tflite(serving, input_keys, keras_model, options, calibration, prepared, channel_last_inputs,
                                 workdir, log)
    finally:
        # onnx2tf builds into TF/Keras global state; the next conversion in this worker must start clean.
        tf_keras.backend.clear_session()
        gc.collect()
    path = workdir / "model.tflite"
    path.write_bytes(flatbuffer)
    inputs, outputs = tflite_io(path, input_keys, output_keys, channel_last_inputs | channel_last_outputs)
    return path, inputs, outputs


def check_request(options: CompileOptions, inputs: list[TensorInfo], outputs: list[TensorInfo]) -> None:
    """The request's own mistakes (a --force_channel_last_* name the model lacks), found before any attempt."""
    _channel_last_names(options.force_channel_last_input, inputs, "input")
    _channel_last_names(options.force_channel_last_output, outputs, "output")


def _channel_last_names(names: list[str] | None, tensors: list[TensorInfo], kind: str) -> set[str]:
    by_name = {t.name: t for t in tensors}
    for name in names or []:
        if name not in by_name:
            raise ConversionError(
                f"--force_channel_last_{kind} names {name!r}, which is not a model {kind}; "
                f"the {kind}s are: {', '.join(map(repr, by_name))}"
            )
        if len(by_name[name].shape) != 4:
            raise ConversionError(
                f"--force_channel_last_{kind} applies to 4-D tensors; {kind} {name!r} has shape "
                f"{tuple(by_name[name].shape)}"
            )
    return set(names or [])


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    """onnx2tf looks for its sample file in the current directory (and writes scratch files there)."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _keras_model(prepared: PreparedOnnx, channel_last_inputs: set[str], workdir: Path, log: ConverterLog,
                 onnx2tf_args: dict):
    import onnx2tf

    # onnx2tf rewrites the file it reads (op names, output shapes): give it a copy.
    source = workdir / "onnx2tf_input.onnx"
    shutil.copyfile(prepared.path, source)
    keep_source_layout = [
        _onnx2tf_name(i.name) for i in prepared.inputs
        if len(i.shape) in (3, 4, 5) and i.name not in channel_last_inputs
    ]
    log.note(f"onnx2tf {onnx2tf.__version__}: building the Keras model"
             + (f" with {', '.join(sorted(onnx2tf_args))}" if onnx2tf_args else ""))
    try:
        model = onnx2tf.convert(
            input_onnx_file_path=str(source),
            output_folder_path=str(workdir / "onnx2tf"),
            disable_model_save=True,  # return the Keras model: no SavedModel, no .tflite variants
            not_use_onnxsim=True,  # already simplified (and its onnxsim step shells out to the CLI)
            keep_ncw_or_nchw_or_ncdhw_input_names=keep_source_layout or None,
            verbosity="info",
            **onnx2tf_args,
        )
    except SystemExit:
        raise ConversionError(_onnx2tf_failure(log, None, prepared)) from None
    except Exception as exc:  # noqa: BLE001  (converters raise anything; the user gets its message)
        raise ConversionError(_onnx2tf_failure(log, exc, prepared)) from None
    if model is None:
        raise ConversionError(_onnx2tf_failure(log, None, prepared))
    return model


def _onnx2tf_name(name: str) -> str:
    return name.replace(":", "__")


def _onnx2tf_failure(log: ConverterLog, exc: BaseException | None, prepared: PreparedOnnx) -> str:
    node_name = getattr(exc, "onnx_op_name", None)
    nodes = {_onnx2tf_name(n.name): n for n in prepared.model.graph.node}
    said = [
        line.removeprefix("ERROR:").strip().rstrip(".") for line in log.errors()
        if not any(advice in line for advice in _ONNX2TF_CLI_ADVICE)
    ]
    message = "onnx2tf could not convert the model"
    node = nodes.get(node_name) if node_name else None
    if node is not None:
        op = f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        message += f": it stopped at node {node.name!r} (op {op})"
    elif node_name:
        message += f": it stopped at node {node_name!r}"
    reasons = said[-3:]
    if exc is not None and not isinstance(exc, ModuleNotFoundError):
        reasons.append(f"{type(exc).__name__}: {_short(str(exc))}")
    if reasons:
        message += ". onnx2tf says: " + " | ".join(dict.fromkeys(reasons))
    if isinstance(exc, ModuleNotFoundError) and node is not None:
        message += (
            f". onnx2tf has no conversion for {node.op_type}: export the model with standard ONNX operators "
            "instead (replace the op by its decomposition), or compile with --target_runtime onnx"
        )
    return message


def _short(text: str, limit: int = 600) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _signature_keys(names: list[str]) -> dict[str, str]:
    """Signature keys must be identifiers; keep them close to the source names and unique."""
    keys: dict[str, str] = {}
    for name in names:
        key = re.sub(r"\W", "_", name) or "t"
        if key[0].isdigit():
            key = "t" + key
        while key in keys:
            key += "_"
        keys[key] = name
    return keys


def _serving_function(keras_model, prepared, channel_last_inputs, channel_last_outputs, calibration, log):
    """A tf.function over the Keras model whose inputs and outputs have the promised layouts, with outputs keyed
    by signature key. Returns it with {key: source input name} and {key: source output name}."""
    import tensorflow as tf

    input_keys = _signature_keys([i.name for i in prepared.inputs])
    output_keys = _signature_keys([o.name for o in prepared.outputs])
    specs = []
    for key, info, keras_input in zip(input_keys, prepared.inputs, keras_model.inputs, strict=True):
        if keras_input.name != _onnx2tf_name(info.name):
            raise ConversionError(f"onnx2tf's Keras inputs are not in the ONNX order: found {keras_input.name!r} "
                                  f"where {info.name!r} belongs")
        shape = [int(d) for d in info.shape]
        if info.name in channel_last_inputs:
            shape = [shape[p] for p in channel_last(len(shape))]
        if list(keras_input.shape) != shape:
            raise ConversionError(
                f"onnx2tf built input {info.name!r} with shape {tuple(keras_input.shape)}; expected {tuple(shape)}"
            )
        specs.append(tf.TensorSpec(shape, keras_input.dtype, name=key))
    if len(keras_model.outputs) != len(prepared.outputs):
        raise ConversionError(
            f"onnx2tf built {len(keras_model.outputs)} outputs for the model's {len(prepared.outputs)}"
        )
    keras_channel_last = _keras_output_layouts(keras_model, prepared, channel_last_inputs, calibration, log)
    perms: list[list[int] | None] = []
    for info, is_channel_last in zip(prepared.outputs, keras_channel_last):
        want_channel_last = info.name in channel_last_outputs
        if is_channel_last == want_channel_last:
            perms.append(None)
        else:
            rank = len(info.shape)
            perms.append(channel_last(rank) if want_channel_last else channel_first(rank))

    @tf.function(input_signature=specs)
    def serving(*args):
        outputs = keras_model(list(args), training=False)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return {
            key: tensor if perm is None else tf.transpose(tensor, perm)
            for key, tensor, perm in zip(output_keys, outputs, perms)
        }

    return serving.get_concrete_function(), input_keys, output_keys


def _keras_output_layouts(keras_model, prepared, channel_last_inputs, calibration, log) -> list[bool]:
    """Per output: does onnx2tf's Keras output have the channel-last layout of the ONNX output?

    The shapes decide, except where the channel-first and channel-last shapes are equal (e.g. 8×8×8): there one
    input set goes through ONNX Runtime and the Keras model, and the layout that matches the numbers wins.
    """
    layouts: list[bool | None] = []
    for info, keras_output in zip(prepared.outputs, keras_model.outputs):
        onnx_shape, keras_shape = list(info.shape), list(keras_output.shape)
        same = _fits(keras_shape, onnx_shape)
        swapped = len(onnx_shape) >= 3 and _fits(keras_shape, [onnx_shape[p] for p in channel_last(len(onnx_shape))])
        if not same and not swapped:
            raise ConversionError(
                f"onnx2tf built output {info.name!r} with shape {tuple(keras_shape)}, which matches neither the "
                f"ONNX shape {tuple(onnx_shape)} nor its channel-last form"
            )
        layouts.append(None if same and swapped else swapped)
    if any(layout is None for layout in layouts):
        layouts = _decide_by_numbers(keras_model, prepared, channel_last_inputs, calibration, layouts, log)
    return layouts  # type: ignore[return-value]


def _fits(shape: list, expected: list) -> bool:
    """Unknown dimensions (None in Keras, symbolic in ONNX) match anything."""
    return len(shape) == len(expected) and all(
        a is None or not isinstance(b, int) or a == b for a, b in zip(shape, expected)
    )


def _decide_by_numbers(keras_model, prepared, channel_last_inputs, calibration, layouts, log) -> list[bool]:
    import onnxruntime as ort

    feeds = calib.example(prepared.inputs, calibration)
    session = ort.InferenceSession(str(prepared.path), providers=["CPUExecutionProvider"])
    reference = session.run([o.name for o in prepared.outputs], feeds)
    keras_inputs = [
        feeds[i.name].transpose(channel_last(feeds[i.name].ndim)) if i.name in channel_last_inputs else feeds[i.name]
        for i in prepared.inputs
    ]
    results = keras_model(keras_inputs, training=False)
    if not isinstance(results, (list, tuple)):
        results = [results]
    decided = []
    for info, layout, result, expected in zip(prepared.outputs, layouts, results, reference):
        if layout is None:
            got = np.asarray(result)
            as_is = float(np.abs(got - expected).max())
            swapped = float(np.abs(got.transpose(channel_first(got.ndim)) - expected).max())
            layout = swapped < as_is
            log.note(f"output {info.name!r}: NCHW and NHWC shapes are equal; by value it is "
                     f"{'channel-last' if layout else 'channel-first'} (max error {min(as_is, swapped):.2e} vs "
                     f"{max(as_is, swapped):.2e})")
        decided.append(layout)
    return decided


def _tflite(serving, input_keys, keras_model, options, calibration, prepared, channel_last_inputs, workdir,
            log) -> bytes:
    import tensorflow as tf

    # The converter saves its trackable object as a SavedModel first. Given the Keras model, that means Keras
    # serialization metadata for every layer: ~40 s of a 45 s conversion on a 3 M-parameter segmenter. A bare
    # module that tracks only the variables (onnx2tf models usually have none: weights are constants) costs ~0.
    trackable = tf.Module()
    trackable.model_variables = list(keras_model.variables)
    kind = options.quantize_full_type
    log.note(f"TFLiteConverter: {kind or 'float32'}{' with integer I/O' if options.quantize_io else ''}")
    if kind in ("int8", "int16"):
        samples = _calibration_samples(calibration, prepared, channel_last_inputs, input_keys)
        return _quantize_in_child(trackable, serving, samples, kind, options.quantize_io, workdir)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serving], trackable)
    configure(converter, kind, options.quantize_io, None)
    try:
        return converter.convert()
    except Exception as exc:  # noqa: BLE001  (converters raise anything; the user gets its message)
        raise ConversionError(_converter_failure(kind, str(exc))) from None


def configure(converter, kind: str | None, quantize_io: bool, representative_dataset) -> None:
    """The converter settings for one precision (here and in quantize_child)."""
    import tensorflow as tf

    # Builtin ops only: a model that needs the Flex (SELECT_TF_OPS) delegate would not run on the farm's devices.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if kind == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif kind in ("int8", "int16"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if kind == "int8"
            else tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        if quantize_io:
            converter.inference_input_type = converter.inference_output_type = tf.int8 if kind == "int8" else tf.int16


def _quantize_in_child(trackable, serving, samples, kind: str, quantize_io: bool, workdir: Path) -> bytes:
    import tensorflow as tf

    from . import quantize_child

    saved, samples_path, out = workdir / "serving", workdir / "calibration.npz", workdir / "quantized.tflite"
    tf.saved_model.save(trackable, str(saved), signatures={"serving_default": serving})
    child.save_samples(samples_path, samples)
    try:
        stdout = child.run(quantize_child.__name__, [str(saved), str(samples_path), str(out), kind,
                                                     "1" if quantize_io else "0"], QUANTIZE_TIMEOUT)
    except child.ChildFailed as exc:
        if not exc.signalled:
            said = f": {exc.said[-1][:300]}" if exc.said else ""
            raise ConversionError(f"the TFLite converter failed {exc.stage} ({exc.how}{said})") from None
        where = f" in {exc.crashed_in}" if exc.crashed_in else ""
        raise ConverterCrashed(
            f"the TFLite converter crashed {exc.stage} ({exc.how}{where}): a defect of TensorFlow's quantizer on "
            f"this graph, not of the model; a float target (no --quantize_full_type) or --target_runtime onnx "
            f"--quantize_full_type int8 (ONNX Runtime's quantizer) may serve instead"
        ) from None
    error = json.loads(stdout.strip().splitlines()[-1]).get("error")
    if error is not None:
        raise ConversionError(_converter_failure(kind, error))
    return out.read_bytes()


def _converter_failure(kind: str | None, text: str) -> str:
    # MLIR prefixes each error with a Python call-site location and repeats it per occurrence.
    errors = list(dict.fromkeys(line.split("error:", 1)[1].strip() for line in text.splitlines() if "error:" in line))
    return ("the TFLite converter could not convert onnx2tf's model" + (f" to {kind}" if kind else "") + ": "
            + _short(" | ".join(errors[:5]) or text))


def _calibration_samples(calibration, prepared, channel_last_inputs, input_keys) -> list[dict[str, np.ndarray]]:
    """Samples in the layout the serving function takes, keyed by its signature keys (for quantize_child).

    Keyed, not listed: a list is fed in the order of the converted graph's input tensors, which need not be the
    serving function's argument order (an image and a vector input came out swapped, and calibration failed at
    the image's TRANSPOSE with "4 != 2" dimensions)."""
    return [
        {key: sample[i.name].transpose(channel_last(sample[i.name].ndim)) if i.name in channel_last_inputs
         else sample[i.name]
         for key, i in zip(input_keys, prepared.inputs, strict=True)}
        for sample in calib.samples(calibration)
    ]
