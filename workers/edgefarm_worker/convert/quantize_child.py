"""Calibrates and quantizes (INT8, INT16) with the TFLite converter, in a child process of the worker.

Why a child (child.py says more): calibration runs the user's graph in TensorFlow's own TFLite interpreter, and
that segfaults on some graphs (the corpus's 2-layer LSTM and bidirectional GRU die in the calibrator's
FeedTensor). Float conversions do not run the graph and stay in the worker. The cost: a Python start and the
TensorFlow import, ~6 s per quantized attempt on this machine.

    python -m edgefarm_worker.convert.quantize_child SAVED_MODEL SAMPLES.npz OUT.tflite KIND QUANTIZE_IO

SAVED_MODEL holds the serving function as its "serving_default" signature; SAMPLES.npz the calibration samples
keyed by signature key, in the layout the signature takes. stdout: one JSON object, {"error": the converter's
message} when it refused, else {}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .child import load_samples, stage, start


def main() -> None:
    start()
    saved, samples_path, out = sys.argv[1:4]
    kind, quantize_io = sys.argv[4], sys.argv[5] == "1"
    stage("importing TensorFlow")
    import tensorflow as tf

    from .to_tflite import configure

    samples = load_samples(Path(samples_path))
    stage("loading the serving function")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    configure(converter, kind, quantize_io, lambda: iter(samples))
    stage(f"converting, calibrating on {len(samples)} samples and quantizing to {kind}")
    try:
        flatbuffer = converter.convert()
    except Exception as exc:  # noqa: BLE001  (converters raise anything; the user gets its message)
        print(json.dumps({"error": str(exc)}))
        return
    Path(out).write_bytes(flatbuffer)
    print(json.dumps({}))


if __name__ == "__main__":
    main()
