"""The SDK and CLI against a real gateway process (fixtures `gateway` and `client` from tests/conftest.py)."""

from __future__ import annotations

import secrets

import edgefarm as ef
import numpy as np
import onnx
import pytest
import torch
from edgefarm.cli import app
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

try:  # the farm fixtures live in tests/conftest.py; skip cleanly (not error) on a tree without them
    from tests import conftest as farm_fixtures
except ImportError:
    farm_fixtures = None
if not (hasattr(farm_fixtures, "gateway") and hasattr(farm_fixtures, "client")):
    pytest.skip("tests/conftest.py does not provide the gateway/client fixtures yet", allow_module_level=True)


def conv_model(seed: int | None = None) -> onnx.ModelProto:
    """A one-conv ONNX model; a fresh seed gives bytes no other test uploaded."""
    rng = np.random.default_rng(secrets.randbits(32) if seed is None else seed)
    weight = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["features"], pads=[1, 1, 1, 1])],
        "conv",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 4, 16, 16])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def test_upload_model_by_path_bytes_and_proto_is_content_addressed(client, tmp_path):
    proto = conv_model()
    path = tmp_path / "portrait-seg.onnx"
    path.write_bytes(proto.SerializeToString())
    by_path = client.models.upload(path)
    assert by_path.name == "portrait-seg" and by_path.format == "onnx"
    assert [(t.name, t.shape, t.dtype) for t in by_path.inputs] == [("image", [1, 3, 16, 16], "float32")]
    assert client.models.upload(path.read_bytes()) == by_path
    assert client.models.upload(proto).id == by_path.id
    assert client.models.upload(by_path) is by_path  # an ef.Model is not uploaded again
    assert client.models.get(by_path.id).sha256 == by_path.sha256


def test_upload_torchscript_and_download_it_back(client, tmp_path):
    traced = torch.jit.trace(torch.nn.Conv2d(3, 2, 1).eval(), torch.zeros(1, 3, 8, 8))
    model = client.models.upload(traced, name=f"ts-{secrets.token_hex(3)}")
    assert model.format == "torchscript"
    saved = model.download(tmp_path)  # a directory: the file is named after the model
    assert saved == tmp_path / f"{model.name}.pt" and saved.stat().st_size == model.size
    loaded = torch.jit.load(str(saved))
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(loaded(x), traced(x))


def test_upload_dataset_and_read_it_back(client, tmp_path):
    rng = np.random.default_rng(secrets.randbits(32))
    samples = {"image": [rng.random((1, 3, 16, 16), dtype=np.float32) for _ in range(3)]}
    name = f"calib-{secrets.token_hex(3)}"
    dataset = client.datasets.upload(samples, name=name)
    assert dataset.name == name
    assert dataset.entries["image"].model_dump() == {"count": 3, "shape": [1, 3, 16, 16], "dtype": "float32"}
    assert client.datasets.upload(samples).id == dataset.id  # same bytes, same dataset
    back = client.datasets.get(dataset.id).to_dict()
    for original, restored in zip(samples["image"], back["image"], strict=True):
        np.testing.assert_array_equal(original, restored)
    npz = dataset.download(tmp_path)
    assert npz.name == f"{name}.npz" and client.datasets.upload(npz).id == dataset.id


def test_lists_page_and_filter(client):
    name = f"listed-{secrets.token_hex(3)}"
    uploaded = [client.models.upload(conv_model(), name=name) for _ in range(3)]
    page = client.models.list(name=name, limit=2)
    assert len(page) == 2 and page.total == 3 and page.limit == 2
    rest = client.models.list(name=name, offset=2)
    assert {m.id for m in [*page, *rest]} == {m.id for m in uploaded}
    assert all(isinstance(d, ef.Dataset) for d in client.datasets.list(limit=5))


def test_module_functions_use_the_configured_client(gateway, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEFARM_API_URL", gateway.url)
    monkeypatch.setenv("EDGEFARM_API_TOKEN", gateway.admin_token)
    path = tmp_path / "qai.onnx"
    onnx.save(conv_model(), path)
    model = ef.upload_model(path, name=f"qai-{secrets.token_hex(3)}")
    assert ef.get_model(model.model_id) == model
    assert model in ef.get_models(name=model.name)
    dataset = ef.upload_dataset({"image": [np.zeros((1, 3, 16, 16), np.float32)] * 2})
    assert ef.get_dataset(dataset.dataset_id) == dataset and isinstance(ef.get_datasets(), list)


def test_bad_token_is_an_authentication_error(gateway):
    with (
        ef.Client(api_url=gateway.url, api_token="not-a-token") as client,
        pytest.raises(ef.AuthenticationError) as e,
    ):
        client.models.list()
    assert e.value.status_code == 401 and e.value.detail  # the gateway's message, not just a code


def test_unknown_ids_are_not_found(client):
    with pytest.raises(ef.NotFoundError) as caught:
        client.models.get("m_doesnotexist")
    assert "m_doesnotexist" in str(caught.value)
    with pytest.raises(ef.NotFoundError):
        client.jobs.get("j_doesnotexist")


def test_bad_options_upload_nothing(client):
    before = client.models.list(limit=1).total
    with pytest.raises(ef.OptionsError, match="unknown option --optimize"):
        client.jobs.submit_compile(conv_model(), "any", options="--optimize 3")
    assert client.models.list(limit=1).total == before


def test_gateway_rejections_carry_its_message(client):
    traced = torch.jit.trace(torch.nn.Conv2d(3, 2, 1).eval(), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ef.BadRequestError, match="input_specs"):  # TorchScript does not record its inputs
        client.jobs.submit_compile(traced, "any", options="--target_runtime tflite")


def test_oversized_upload_is_payload_too_large(client):
    limit = 16 * 1024**2  # what tests/conftest.py gives the gateway
    with pytest.raises(ef.PayloadTooLargeError, match="limit"):
        client.models.upload(b"\0" * (limit + 1024**2))


def test_compile_job_can_be_waited_for_and_cancelled(client):
    name = f"cancel-me-{secrets.token_hex(3)}"
    job = client.jobs.submit_compile(
        conv_model(),  # fresh bytes: no cached target can finish it at once
        None,  # a compile needs no device
        name=name,
        input_specs={"image": ((1, 3, 16, 16), "float32")},
        options="--target_runtime tflite --quantize_full_type int8",
        calibration_data={"image": [np.zeros((1, 3, 16, 16), np.float32)] * 2},
    )
    assert isinstance(job, ef.CompileJob) and job.name == name and job.calibration_dataset_id
    assert job.input_specs["image"].shape == [1, 3, 16, 16]
    assert (
        job.model.inputs[0].name == "image" and job.model.name == name
    )  # in-memory model takes the job's name
    fetched = client.jobs.get(job.id)
    assert isinstance(fetched, ef.CompileJob) and fetched == job
    assert job in client.jobs.list(type="compile", name=name)
    with pytest.raises(TimeoutError, match="job.wait"):
        job.wait(timeout=0.3)

    status = job.cancel()
    assert status.code == ef.JobState.CANCELLED and status.failure and job.result is None
    assert job.wait().code == ef.JobState.CANCELLED
    with pytest.raises(ef.JobFailedError, match="CANCELLED") as caught:
        job.get_target_model()
    assert caught.value.job is job
    with pytest.raises(ef.ConflictError):
        client.jobs.cancel(job.id)
    assert [e.state for e in job.refresh().events][-1] == ef.JobState.CANCELLED


def test_cli_round_trip(gateway, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEFARM_API_URL", gateway.url)
    monkeypatch.setenv("EDGEFARM_API_TOKEN", gateway.admin_token)
    path = tmp_path / "cli-net.onnx"
    onnx.save(conv_model(), path)
    runner = CliRunner()

    uploaded = runner.invoke(app, ["models", "upload", str(path)])
    assert uploaded.exit_code == 0, uploaded.output
    model_id = uploaded.stdout.strip().splitlines()[-1]
    assert model_id.startswith("m")
    shown = runner.invoke(app, ["models", "show", model_id])
    assert shown.exit_code == 0 and "image: float32[1, 3, 16, 16]" in shown.stdout
    assert model_id in runner.invoke(app, ["models", "list", "--name", "cli-net"]).stdout
    downloaded = runner.invoke(app, ["models", "download", model_id, "-o", str(tmp_path / "back.onnx")])
    assert downloaded.exit_code == 0 and (tmp_path / "back.onnx").read_bytes() == path.read_bytes()

    submitted = runner.invoke(app, ["compile", model_id, "--options", "--target_runtime tflite", "--no-wait"])
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.stdout.strip().splitlines()[-1]
    assert "CREATED" in runner.invoke(app, ["jobs", "show", job_id]).stdout
    assert runner.invoke(app, ["jobs", "cancel", job_id]).stdout.strip() == f"{job_id} CANCELLED"
    waited = runner.invoke(app, ["jobs", "wait", job_id])
    assert waited.exit_code == 1 and "cancelled by the user" in waited.output

    missing = runner.invoke(app, ["models", "show", "m_nope"])
    assert missing.exit_code == 1 and missing.output.startswith("error: ")
