"""Absurd values are refused at submit, each with a message naming the bound, and leave nothing behind: before,
they were accepted and failed later (or never), and names were stored with NUL, bidi overrides and line breaks."""

from __future__ import annotations

import numpy as np
import pytest

from tests.gateway.test_api import api, conv_onnx, npz, upload  # noqa: F401  (api is a fixture)

HOSTILE_NAMES = {
    "NUL": ("model\x00.onnx", "U+0000 at position 5"),
    "bidi override": ("cat\u202egnp.onnx", "U+202E at position 3"),
    "CR/LF": ("ok\r\nX-Injected: 1", "U+000D at position 2"),
    "10,000 characters": ("n" * 10_000, "at most 200 characters"),
}


@pytest.fixture(scope="module")
def model(gateway):
    import httpx

    with httpx.Client(base_url=f"{gateway.url}/api/v1", timeout=30,
                      headers={"Authorization": f"Bearer {gateway.admin_token}"}) as client:
        return upload(client, conv_onnx(seed=71)).json()


def job_count(api) -> int:  # noqa: F811
    return api.get("/jobs", params={"limit": 1}).json()["total"]


@pytest.mark.parametrize("name, message", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_hostile_names_are_refused_everywhere_a_name_is_given(api, model, name, message):  # noqa: F811
    jobs = job_count(api)
    for path, body in [("/jobs/compile", {"model_id": model["id"], "name": name}),
                       ("/jobs/profile", {"model_id": model["id"], "device": {"name": "Host CPU"}, "name": name}),
                       ("/jobs/profile", {"model_id": model["id"], "device": {"name": name}}),
                       ("/tokens", {"name": name, "role": "user"})]:
        response = api.post(path, json=body)
        assert response.status_code == 422 and message in response.json()["detail"], (path, response.text)
    uploaded = api.post("/models", files={"file": ("m.onnx", conv_onnx(seed=72))}, data={"name": name})
    assert uploaded.status_code == 422 and message in uploaded.json()["detail"]
    assert api.get("/models", params={"sha256": __import__("hashlib").sha256(conv_onnx(seed=72)).hexdigest()}
                   ).json()["total"] == 0
    assert job_count(api) == jobs


def test_a_file_name_becomes_a_clean_model_name(api):  # noqa: F811
    uploaded = api.post("/models", files={"file": ("evil\u202e\u2066name.onnx", conv_onnx(seed=73))})
    assert uploaded.status_code == 201 and uploaded.json()["name"] == "evilname"


@pytest.mark.parametrize("specs, message", [
    ({"image": {"shape": [-1, 3, 16, 16]}}, "greater than or equal to 1"),
    ({"image": {"shape": [10**18, 3, 16, 16]}}, "less than or equal to 2147483647"),
    ({"image": {"shape": [4096, 3, 1024, 1024]}}, "at most 2147483647 per tensor"),
    ({"image": {"shape": [1] * 9}}, "at most 8 items"),
    ({"image": {"shape": [1, 3, 16, 16], "dtype": "complex128"}}, "Input should be 'float32'"),
])
def test_absurd_input_specs_are_refused(api, model, specs, message):  # noqa: F811
    response = api.post("/jobs/compile", json={"model_id": model["id"], "input_specs": specs})
    assert response.status_code == 422 and message in response.json()["detail"], response.text


@pytest.mark.parametrize("options, message", [
    ("--max_profiler_time inf", "--max_profiler_time must be a number of seconds above 0 and at most 3600"),
    ("--max_profiler_time nan", "at most 3600; got 'nan'"),
    ("--warmup_iterations 10000000000", "--warmup_iterations must be a whole number from 1 to 10000"),
    ("--max_profiler_iterations 0", "from 1 to 100000"),
    ("--tflite_options number_of_threads=100000", "number_of_threads must be a whole number from 1 to 256"),
])
def test_absurd_profile_options_are_refused(api, model, options, message):  # noqa: F811
    response = api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": "Host CPU"},
                                               "options": options})
    assert response.status_code == 400 and message in response.json()["detail"], response.text


def test_calibration_samples_of_another_dtype_are_refused(api, model):  # noqa: F811
    calibration = upload(api, npz(image=np.zeros((2, 1, 3, 16, 16), np.float64)), kind="datasets").json()
    response = api.post("/jobs/compile", json={"model_id": model["id"], "options": "--quantize_full_type int8",
                                               "calibration_dataset_id": calibration["id"]})
    assert response.status_code == 400
    assert "samples for image are float64; the input takes float32" in response.json()["detail"]
    too_long = api.post("/jobs/compile", json={"model_id": model["id"], "options": "--target_runtime onnx " * 400})
    assert too_long.status_code == 422 and "at most 4000 characters" in too_long.json()["detail"]


def test_a_nul_in_an_id_or_a_filter_is_refused_before_the_database_sees_it(api, model):  # noqa: F811
    """PostgreSQL cannot compare a NUL: before, a NUL in a filter was its 500."""
    for path, params in [("/models", {"name": "a\x00b"}), ("/jobs", {"model_id": "m\x00"}), ("/models/m%00x", {})]:
        response = api.get(path, params=params)
        assert response.status_code == 400 and "NUL" in response.json()["detail"], (path, response.text)
    compile_nul = api.post("/jobs/compile", json={"model_id": model["id"] + "\x00"})
    assert compile_nul.status_code == 422 and "model_id" in compile_nul.json()["detail"]
