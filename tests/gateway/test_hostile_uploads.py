"""Hostile model files get a 400 and leave nothing behind; the gateway that read them keeps serving.

LiteRT's reader crashes on corrupt .tflite files (SIGSEGV, SIGBUS): here, on a seeded set of byte changes to a
real model's header and tables, most of them. Read in the gateway's own process, each crash took the gateway down.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.gateway.test_api import api, stored_files, upload  # noqa: F401  (api is a fixture)

CRASHED = "crashed the parser (SIG"


@pytest.fixture(scope="module")
def tflite(tmp_path_factory) -> bytes:
    """A small real model: the TFLite converter's output for a conv + dense Keras model."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    image = tf.keras.Input((16, 16, 3), batch_size=1)
    features = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu")(image)
    logits = tf.keras.layers.Dense(2)(tf.keras.layers.GlobalAveragePooling2D()(features))
    return tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(image, logits)).convert()


def corrupted(model: bytes) -> list[bytes]:
    """Truncations, and four random bytes changed within the flatbuffer's first 256 bytes (its root table, the
    offsets to subgraphs, tensors and buffers), as a damaged download or a fuzzer would."""
    rng = np.random.default_rng(0)
    variants = [model[: int(len(model) * share)] for share in (0.1, 0.4, 0.7, 0.95)]
    for _ in range(12):
        changed = bytearray(model)
        for position in rng.integers(8, 256, 4):
            changed[position] = rng.integers(0, 256)
        variants.append(bytes(changed))
    return variants


def test_corrupt_tflite_files_are_refused_and_the_gateway_lives(gateway, api, tflite):  # noqa: F811
    before = stored_files(gateway)
    answers = []
    for index, content in enumerate(corrupted(tflite)):
        response = upload(api, content, name=f"corrupt-{index}")
        assert response.status_code in (201, 400), response.text  # a change may leave a model LiteRT reads
        answers.append(response)
        assert httpx.get(f"{gateway.url}/api/v1/health", timeout=5).status_code == 200
    refused = [r.json()["detail"] for r in answers if r.status_code == 400]
    crashes = [detail for detail in refused if CRASHED in detail]
    assert len(crashes) >= 3, refused  # the crash path itself was exercised
    assert all("upload the file as the exporter or converter wrote it" in detail for detail in crashes)
    accepted = {r.json()["sha256"] for r in answers if r.status_code == 201}
    assert {name.rsplit("/", 1)[-1] for name in stored_files(gateway) - before} == accepted  # staging is empty
    assert not list((gateway.data_dir / "artifacts" / "staging").iterdir())
    assert upload(api, tflite, name="intact").status_code in (200, 201)


def test_corrupt_onnx_files_are_refused_and_the_gateway_lives(gateway, api):  # noqa: F811
    """The same damage to an ONNX model (protobuf): each upload is a 201 (the damage left a model the checker
    accepts) or a 400 naming the file as unreadable or what the checker found, the gateway keeps answering, and
    nothing refused is stored."""
    from tests.gateway.test_api import conv_onnx

    model = conv_onnx(channels=8, seed=81)
    before = stored_files(gateway)
    answers = [upload(api, content, name=f"corrupt-onnx-{index}") for index, content in enumerate(corrupted(model))]
    assert httpx.get(f"{gateway.url}/api/v1/health", timeout=5).status_code == 200
    assert all(r.status_code in (201, 400) for r in answers), [r.text for r in answers]
    refused = [r.json()["detail"] for r in answers if r.status_code == 400]
    reasons = ("not a model EdgeFarm can read", "does not pass onnx.checker", CRASHED)
    assert len(refused) >= 4 and all(any(r in d for r in reasons) for d in refused), refused
    accepted = {r.json()["sha256"] for r in answers if r.status_code == 201}
    assert {name.rsplit("/", 1)[-1] for name in stored_files(gateway) - before} == accepted
