"""submit_compile_job checks every argument before the first byte leaves: a mistake costs no upload.

The client points at a real HTTP server that records every request; each test asserts it received none.
"""

from __future__ import annotations

import edgefarm as ef
import numpy as np
import pytest
import torch
from edgefarm.cli import app
from typer.testing import CliRunner

from tests.sdk.peer import Reply


@pytest.fixture
def client(peer):
    with ef.Client(api_url=peer.url, api_token="t") as client:
        yield client


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "net.onnx"
    path.write_bytes(b"\x08\x07")  # never parsed: nothing may be uploaded
    return path


CALIBRATION = {"image": [np.zeros((1, 3, 8, 8), np.float32)] * 4}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("--target_runtime tflitee", "must be one of tflite, onnx"),
        ("--quantize_full_type int8 --bogus", "unknown option --bogus"),
        ("--quantize_io", "--quantize_io needs"),
        ("--target_runtime 'tflite", "cannot read the options string"),
    ],
)
def test_bad_options_fail_before_any_upload(client, peer, model_file, options, message):
    with pytest.raises(ef.OptionsError, match=message) as caught:
        client.jobs.submit_compile(model_file, "Pixel 8", options=options, calibration_data=CALIBRATION)
    assert isinstance(caught.value, ValueError)
    assert peer.seen == []


def test_module_function_checks_options_first(peer, model_file, monkeypatch):
    monkeypatch.setenv("EDGEFARM_API_URL", peer.url)
    monkeypatch.setenv("EDGEFARM_API_TOKEN", "t")
    with pytest.raises(ef.OptionsError):
        ef.submit_compile_job(model_file, ef.Device("Pixel 8"), options="--nope")
    assert peer.seen == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"input_specs": {"image": ((1, 3, 0, 8), "float32")}}, ValueError, "positive"),
        (
            {"calibration_data": {"image": [np.zeros(3)] * 2, "mask": [np.zeros(3)]}},
            ValueError,
            "same number",
        ),
        ({"input_specs": {"img": (1, 3, 8, 8)}, "calibration_data": CALIBRATION}, ValueError, r"\['image'\]"),
        ({"device": 42}, TypeError, "device name"),
    ],
)
def test_bad_arguments_fail_before_any_upload(client, peer, model_file, kwargs, error, message):
    arguments = {"device": "Pixel 8", **kwargs}
    with pytest.raises(error, match=message):
        client.jobs.submit_compile(model_file, **arguments)
    assert peer.seen == []


def test_untraced_torch_module_fails_before_any_upload(client, peer):
    with pytest.raises(TypeError, match=r"torch\.jit\.trace"):
        client.jobs.submit_compile(torch.nn.Linear(2, 2), "Pixel 8", calibration_data=CALIBRATION)
    assert peer.seen == []


def test_cli_prints_one_line_and_exits_1(peer, model_file, monkeypatch):
    monkeypatch.setenv("EDGEFARM_API_URL", peer.url)
    monkeypatch.setenv("EDGEFARM_API_TOKEN", "t")
    result = CliRunner().invoke(app, ["compile", str(model_file), "--options", "--bogus"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: unknown option --bogus")
    assert len(result.output.strip().splitlines()) == 1 and peer.seen == []

    peer.then(Reply(404, {"error": "not_found", "detail": "job j_x does not exist"}))
    result = CliRunner().invoke(app, ["jobs", "show", "j_x"])
    assert (
        result.exit_code == 1
        and result.output.strip() == "error: job j_x does not exist (HTTP 404 not_found)"
    )


def test_cli_usage_errors_exit_2(peer, model_file, monkeypatch):
    monkeypatch.setenv("EDGEFARM_API_TOKEN", "t")
    result = CliRunner().invoke(app, ["compile", str(model_file), "--input-spec", "image:1,3"])
    assert result.exit_code == 2 and "NAME=D1,D2" in result.output
    assert CliRunner().invoke(app, ["jobs", "list", "--state", "DONE"]).exit_code == 2


def test_cli_without_token_says_how_to_configure():
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 1 and "edgefarm configure --api_token" in result.output
