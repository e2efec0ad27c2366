"""The gateway's REST API through a real gateway process, on every backend."""

from __future__ import annotations

import io
import json
import socket
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgefarm_gateway.app import create_app
from edgefarm_gateway.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def conv_onnx(channels: int = 4, seed: int = 0) -> bytes:
    """A one-conv ONNX model, different bytes per seed."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.standard_normal((channels, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["features"], pads=[1, 1, 1, 1])], "conv",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, channels, 16, 16])], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture
def api(gateway):
    with httpx.Client(base_url=f"{gateway.url}/api/v1", timeout=30,
                      headers={"Authorization": f"Bearer {gateway.admin_token}"}) as client:
        yield client


def stored_files(gateway) -> set[str]:
    root = gateway.data_dir / "artifacts"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def upload(api, content: bytes, name: str = "m", kind: str = "models") -> httpx.Response:
    return api.post(f"/{kind}", files={"file": (f"{name}.bin", content)}, data={"name": name})


def test_health_needs_no_token(gateway):
    response = httpx.get(f"{gateway.url}/api/v1/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_tokens_are_required_and_scoped(gateway, api):
    anonymous = httpx.get(f"{gateway.url}/api/v1/models")
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
    wrong = httpx.get(f"{gateway.url}/api/v1/models", headers={"Authorization": "Bearer ef_nope"})
    assert wrong.status_code == 401 and "invalid" in wrong.json()["detail"]

    created = api.post("/tokens", json={"name": "alice", "role": "user"})
    assert created.status_code == 201
    user = {"Authorization": f"Bearer {created.json()['token']}"}
    assert httpx.get(f"{gateway.url}/api/v1/models", headers=user).status_code == 200
    forbidden = httpx.post(f"{gateway.url}/api/v1/tokens", json={"name": "x"}, headers=user)
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"

    agent = api.post("/tokens", json={"name": "lab agent", "role": "agent"}).json()
    refused = httpx.get(f"{gateway.url}/api/v1/jobs", headers={"Authorization": f"Bearer {agent['token']}"})
    assert refused.status_code == 403

    assert api.delete(f"/tokens/{created.json()['id']}").status_code == 204
    assert httpx.get(f"{gateway.url}/api/v1/models", headers=user).status_code == 401


def test_model_upload_is_content_addressed_and_validated(gateway, api):
    content = conv_onnx(seed=1)
    first = upload(api, content, "conv")
    assert first.status_code == 201, first.text
    model = first.json()
    assert model["format"] == "onnx" and model["size"] == len(content)
    assert model["inputs"] == [{"name": "image", "shape": [1, 3, 16, 16], "dtype": "float32", "layout": None,
                                "quantization": None, "source_name": None}]
    assert model["outputs"][0]["name"] == "features"

    again = upload(api, content, "conv-again")
    assert again.status_code == 200 and again.json()["id"] == model["id"]

    download = api.get(f"/models/{model['id']}/download")
    assert download.content == content
    assert download.headers["etag"] == f'"{model["sha256"]}"'
    assert api.get(f"/models/{model['id']}/download", headers={"If-None-Match": download.headers["etag"]}
                   ).status_code == 304
    listed = api.get("/models", params={"name": "conv"}).json()
    assert model["id"] in [m["id"] for m in listed["items"]]


def test_hostile_model_uploads_are_refused_and_nothing_is_stored(gateway, api):
    before = stored_files(gateway)
    truncated = upload(api, conv_onnx(seed=2)[:150])
    assert truncated.status_code == 400 and "not a model EdgeFarm can read" in truncated.json()["detail"]

    escaping = onnx.load_from_string(conv_onnx(seed=3))
    weight = escaping.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value="../../../etc/passwd")
    refused = upload(api, escaping.SerializeToString())
    assert refused.status_code == 400
    assert "points outside the model's directory" in refused.json()["detail"]

    checkpoint = io.BytesIO()
    with zipfile.ZipFile(checkpoint, "w") as archive:
        archive.writestr("model/data.pkl", b"\x80\x04N.")
    not_torchscript = upload(api, checkpoint.getvalue())
    assert not_torchscript.status_code == 400 and "torch.jit.trace" in not_torchscript.json()["detail"]

    limit = 16 * 1024**2
    too_big = upload(api, b"\0" * (limit + 1024 * 1024))
    assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large"

    def chunked():  # no Content-Length: the limit is found while the body streams
        boundary = b"--edgefarm"
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.onnx"\r\n\r\n'
        for _ in range(limit // (1 << 20) + 2):
            yield b"\0" * (1 << 20)
        yield b"\r\n" + boundary + b"--\r\n"

    streamed = api.post("/models", content=chunked(),
                        headers={"Content-Type": "multipart/form-data; boundary=edgefarm"})
    assert streamed.status_code == 413 and streamed.json()["error"] == "payload_too_large", streamed.text
    assert stored_files(gateway) == before


def test_dataset_upload_reads_headers_and_refuses_pickles(gateway, api):
    samples = np.random.default_rng(0).standard_normal((5, 1, 3, 16, 16)).astype(np.float32)
    created = upload(api, npz(image=samples), "calib", kind="datasets")
    assert created.status_code == 201, created.text
    assert created.json()["entries"] == {"image": {"count": 5, "shape": [1, 3, 16, 16], "dtype": "float32"}}
    assert api.get(f"/datasets/{created.json()['id']}/download").content == npz(image=samples)

    before = stored_files(gateway)
    pickled = io.BytesIO()
    np.savez(pickled, image=np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    refused = upload(api, pickled.getvalue(), kind="datasets")
    assert refused.status_code == 400 and "pickled" in refused.json()["detail"]

    ragged = upload(api, npz(a=np.zeros((3, 2), np.float32), b=np.zeros((4, 2), np.float32)), kind="datasets")
    assert ragged.status_code == 400 and "same number of samples" in ragged.json()["detail"]
    not_npz = upload(api, b"hello", kind="datasets")
    assert not_npz.status_code == 400 and ".npz" in not_npz.json()["detail"]
    assert stored_files(gateway) == before


@pytest.mark.parametrize("options, message", [
    ("--quantize_full_type int4", "--quantize_full_type must be one of int8, int16, float16; got 'int4'"),
    ("--frobnicate", "unknown option --frobnicate"),
    ("--quantize_io", "--quantize_io needs --quantize_full_type int8 or int16"),
    ("--quantize_full_type int8", "needs calibration data"),
    ("--output_names nope", "the model has no output nope; its outputs are features"),
])
def test_compile_options_are_checked_at_submit(api, options, message):
    model = upload(api, conv_onnx(seed=4)).json()
    response = api.post("/jobs/compile", json={"model_id": model["id"], "options": options})
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]


def test_compile_inputs_are_checked_at_submit(api):
    model = upload(api, conv_onnx(seed=5)).json()
    wrong_name = api.post("/jobs/compile", json={"model_id": model["id"],
                                                 "input_specs": {"img": {"shape": [1, 3, 16, 16]}}})
    assert wrong_name.status_code == 400
    assert "img, which the model does not have; its inputs are image" in wrong_name.json()["detail"]
    wrong_shape = api.post("/jobs/compile", json={"model_id": model["id"],
                                                  "input_specs": {"image": {"shape": [1, 3, 32, 32]}}})
    assert wrong_shape.status_code == 400 and "(1, 3, 32, 32)" in wrong_shape.json()["detail"]

    calib = upload(api, npz(pixels=np.zeros((2, 1, 3, 16, 16), np.float32)), kind="datasets").json()
    mismatch = api.post("/jobs/compile", json={"model_id": model["id"], "options": "--quantize_full_type int8",
                                               "calibration_dataset_id": calib["id"]})
    assert mismatch.status_code == 400
    assert "missing: image, unknown: pixels" in mismatch.json()["detail"]
    assert api.post("/jobs/compile", json={"model_id": "mnope"}).status_code == 404
    invalid = api.post("/jobs/compile", json={"options": ""})
    assert invalid.status_code == 422 and invalid.json()["error"] == "validation_error"


def test_jobs_list_filters_paginates_and_cancels(api):
    model = upload(api, conv_onnx(seed=6)).json()

    def submit(options: str) -> str:
        return api.post("/jobs/compile", json={"model_id": model["id"], "name": "paging-test", "options": options}
                        ).json()["id"]

    # Cancelled straight after its submit: on a farm with a worker running (postgres runs after the e2e tests),
    # a tiny model compiles in about a second, and a cancel after the paging below could find it finished.
    ids = [submit("")]
    cancelled = api.post(f"/jobs/{ids[0]}/cancel")
    ids += [submit(options) for options in ("--quantize_full_type float16", "--target_runtime onnx")]
    page = api.get("/jobs", params={"name": "paging-test", "limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    rest = api.get("/jobs", params={"name": "paging-test", "limit": 2, "offset": 2}).json()
    assert {j["id"] for j in page["items"] + rest["items"]} == set(ids)

    assert cancelled.status_code == 200 and cancelled.json()["state"] == "CANCELLED"
    assert [e["state"] for e in cancelled.json()["events"]][-1] == "CANCELLED"
    again = api.post(f"/jobs/{ids[0]}/cancel")
    assert again.status_code == 409 and "already CANCELLED" in again.json()["detail"]
    only = api.get("/jobs", params={"name": "paging-test", "state": "CANCELLED"}).json()
    assert [j["id"] for j in only["items"]] == [ids[0]]
    for job_id in ids[1:]:
        api.post(f"/jobs/{job_id}/cancel")


def test_errors_have_one_shape(api):
    missing = api.get("/models/mnope")
    assert missing.status_code == 404 and missing.json() == {"error": "not_found", "detail": "no model mnope"}
    route = api.get("/no-such-route")
    assert route.status_code == 404 and route.json()["error"] == "not_found"


def test_openapi_document_matches_the_app(tmp_path):
    app = create_app(Settings(data_dir=tmp_path), background=False)
    committed = json.loads((REPO / "openapi" / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(app.openapi())), (
        "openapi/openapi.json is out of date: run `python -m edgefarm_gateway openapi > openapi/openapi.json`")


@pytest.mark.parametrize("path", ["/jobs", "/models", "/datasets", "/pipelines", "/registry/models"])
def test_page_parameters_out_of_range_are_a_422_naming_the_bound(api, path):
    huge = api.get(path, params={"offset": "99999999999999999999"})
    assert huge.status_code == 422 and "less than or equal to 2147483647" in huge.text, huge.text
    assert api.get(path, params={"limit": 0}).status_code == 422
    last = api.get(path, params={"offset": 2**31 - 1}).json()
    assert last["items"] == [] and last["offset"] == 2**31 - 1


def test_an_admin_cannot_revoke_its_own_token_and_a_revoked_kept_token_is_replaced(gateway, api):
    """A kept token (the data dir's, which `edgefarm up` prints) that was revoked is replaced, not printed
    again; an admin's own token cannot be revoked with itself."""
    farm = gateway.farm
    spare = farm._token("spare", "admin")
    assert farm._token("spare", "admin") == spare  # kept while valid
    listed = {t["name"]: t["id"] for t in api.get("/tokens").json()}
    own = httpx.delete(f"{gateway.url}/api/v1/tokens/{listed['local spare']}",
                       headers={"Authorization": f"Bearer {spare}"})
    assert own.status_code == 409 and "revoke it with another admin token" in own.json()["detail"]
    assert api.delete(f"/tokens/{listed['local spare']}").status_code == 204
    renewed = farm._token("spare", "admin")
    assert renewed != spare
    assert httpx.get(f"{gateway.url}/api/v1/tokens", headers={"Authorization": f"Bearer {renewed}"}).status_code == 200
    assert (farm.data_dir / "spare-token").stat().st_mode & 0o777 == 0o600


def test_a_stalled_request_body_is_answered_408_and_closed(gateway):
    """A client that starts an upload and sends nothing more is not waited for forever (here after 5 s, the
    test farm's EDGEFARM_BODY_IDLE_SECONDS)."""
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(f"POST /api/v1/models HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer "
                           f"{gateway.admin_token}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                           "Content-Length: 100000\r\n\r\n--x\r\n".encode())
        started = time.monotonic()
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and b"nothing arrived for 5 s" in answer, answer[:300]
    assert 4 < time.monotonic() - started < 20


def test_a_body_that_trickles_in_is_answered_408_and_closed(gateway):
    """A byte every 2 s is never idle for the test farm's 5 s, but after them it arrives at under 1 KiB/s."""
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(f"POST /api/v1/models HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer "
                           f"{gateway.admin_token}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                           "Content-Length: 100000\r\n\r\n--x\r\n".encode())
        started, answer = time.monotonic(), b""
        connection.settimeout(2)
        while time.monotonic() - started < 30:
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                connection.sendall(b"y")  # the trickle
                continue
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and b"trickles in at" in answer, answer[:300]
    assert 4 < time.monotonic() - started < 15
