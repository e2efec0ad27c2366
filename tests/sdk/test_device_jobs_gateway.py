"""Profile and inference jobs and devices through the SDK and CLI, against a real gateway process.

No device agent runs here: where a job must finish, the test plays the agent's part over the agent protocol
(register, lease, post the result) so the SDK's side (submit, wait, download) meets the farm's real answers.
The real agent program is exercised end to end in tests/e2e.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Iterator

import edgefarm as ef
import httpx
import numpy as np
import pytest
from edgefarm.cli import app
from edgefarm.datasets import write_npz
from edgefarm.wire import AgentRegisterIn, AgentRegisterOut, DeviceSpec, Lease, LeaseIn
from typer.testing import CliRunner

from tests.sdk.test_sdk_gateway import conv_model

ROUTE_MISSING = {"Not Found", "Method Not Allowed"}  # what the gateway says for a route it does not have


@pytest.fixture
def device_api(client) -> ef.Client:
    """The client, once the gateway has the device endpoints; a clear skip on a gateway without them."""
    for call, endpoint in [
        (lambda: client._transport.get("/devices"), "GET /devices"),
        (lambda: client._transport.post("/jobs/profile", {}), "POST /jobs/profile"),
        (lambda: client._transport.post("/jobs/inference", {}), "POST /jobs/inference"),
    ]:
        try:
            call()
        except ef.UnprocessableEntityError:
            pass  # the route exists and refused an empty body
        except ef.APIStatusError as exc:
            if exc.status_code in (404, 405) and exc.detail in ROUTE_MISSING:
                pytest.skip(f"the gateway has no {endpoint} yet")
            raise
    return client


class ScriptedAgent:
    """The agent's side of the protocol, by hand: one device in a pool no other test uses."""

    def __init__(self, client: ef.Client, gateway_url: str) -> None:
        token = client.tokens.create(f"agent-{secrets.token_hex(3)}", role="agent").token
        self.http = httpx.Client(
            base_url=f"{gateway_url}/api/v1", timeout=30, headers={"Authorization": f"Bearer {token}"}
        )
        self.pool = f"Test Phone {secrets.token_hex(3)}"
        self.serial = f"sn-{secrets.token_hex(4)}"
        spec = DeviceSpec(
            name=self.pool,
            serial=self.serial,
            os="android 14",
            attributes=["framework:tflite", "framework:onnx"],
        )
        body = AgentRegisterIn(agent_name=f"lab-{secrets.token_hex(3)}", version="test", devices=[spec])
        response = self.http.post("/agent/register", json=body.model_dump(mode="json"))
        assert response.status_code == 200, response.text
        self.registered = AgentRegisterOut.model_validate(response.json())

    def lease(self) -> Lease:
        request = LeaseIn(
            agent_id=self.registered.agent_id,
            wait_seconds=5,
            device_ids=[d.id for d in self.registered.devices],
        )
        response = self.http.post("/agent/lease", json=request.model_dump(mode="json"))
        assert response.status_code == 200, response.text
        return Lease.model_validate(response.json())

    def post_result(self, lease: Lease, **parts: object) -> None:
        response = self.http.post(f"/agent/jobs/{lease.job_id}/result", **parts)
        assert response.status_code == 204, response.text

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def agent(device_api, gateway) -> Iterator[ScriptedAgent]:
    scripted = ScriptedAgent(device_api, gateway.url)
    yield scripted
    scripted.close()


def test_get_devices_lists_registered_devices_with_their_state(device_api, agent, gateway, monkeypatch):
    everything = device_api.devices.list()
    assert all(isinstance(d, ef.Device) and d.id and d.serial and d.state for d in everything)
    assert device_api.devices.list(name=f"No Such Pool {secrets.token_hex(3)}") == []

    [device] = device_api.devices.list(name=agent.pool)
    assert device.serial == agent.serial and device.state == "online" and device.online
    assert device.agent_id == agent.registered.agent_id and device.current_job_id is None
    assert device.to_wire().name == agent.pool  # a listed device selects its pool
    assert device_api.devices.list(name=agent.pool, os="android [12,15)", attributes="framework:onnx") == [
        device
    ]
    assert device_api.devices.list(name=agent.pool, attributes=["framework:onnx", "accelerator:npu"]) == []

    monkeypatch.setenv("EDGEFARM_API_URL", gateway.url)
    monkeypatch.setenv("EDGEFARM_API_TOKEN", gateway.admin_token)
    assert ef.get_devices(name=agent.pool) == [device]
    shown = CliRunner().invoke(app, ["devices", "--name", agent.pool])
    assert shown.exit_code == 0 and agent.serial in shown.stdout and "online" in shown.stdout


def test_profile_for_a_device_that_does_not_exist_is_a_bad_request(device_api):
    missing = f"Pixel {secrets.token_hex(3)}"
    with pytest.raises(ef.BadRequestError, match=f"no device matches '{missing}'"):
        device_api.jobs.submit_profile(conv_model(seed=1), ef.Device(missing))
    with pytest.raises(ef.BadRequestError, match=missing):
        device_api.jobs.submit_inference(
            conv_model(seed=1), missing, {"image": [np.zeros((1, 3, 16, 16), np.float32)]}
        )


def test_profile_job_round_trip(device_api, agent):
    job = device_api.jobs.submit_profile(
        conv_model(),
        ef.Device(agent.pool),
        name=f"prof-{secrets.token_hex(3)}",
        options="--max_profiler_iterations 3 --compute_unit cpu",
    )
    assert isinstance(job, ef.ProfileJob) and job.state == ef.JobState.CREATED and job.profile is None
    assert isinstance(device_api.jobs.get(job.id), ef.ProfileJob)
    assert job in device_api.jobs.list(type="profile", name=job.name)

    lease = agent.lease()
    assert lease.job_id == job.id and lease.job_type == ef.JobType.PROFILE
    assert job.refresh().state == ef.JobState.PROVISIONING_DEVICE and job.device_id == lease.device_id
    stats = {"min": 400.0, "median": 500.0, "mean": 510.0, "p90": 600.0, "p99": 650.0, "std": 40.0}
    profile = {
        "execution_summary": {
            "estimated_inference_time": 500.0,
            "estimated_inference_peak_memory": 3_000_000,
            "first_load_time": 9000.0,
            "warm_load_time": 2000.0,
            "all_inference_times": [400.0, 500.0, 650.0],
            "inference_stats": stats,
            "iterations": 3,
            "compute_unit": "cpu",
        },
        "execution_detail": [
            {"name": "conv", "type": "Conv", "compute_unit": "CPU", "execution_time": 450.0}
        ],
        "runtime": "onnxruntime 1.23.0",
        "device": {"name": agent.pool, "serial": agent.serial, "os": "android 14"},
    }
    agent.post_result(lease, data={"lease_token": lease.lease_token, "profile": json.dumps(profile)})

    downloaded = job.download_profile()
    assert downloaded["execution_summary"]["estimated_inference_time"] == 500.0
    assert downloaded["execution_detail"][0]["compute_unit"] == "CPU"
    assert job.profile.execution_summary.inference_stats.p99 == 650.0 and job.get_status().success


def test_inference_job_round_trip(device_api, agent):
    rng = np.random.default_rng(7)
    samples = [rng.random((1, 3, 16, 16), dtype=np.float32) for _ in range(2)]
    with pytest.raises(ValueError, match="unknown: img"):  # checked against the model before any input upload
        device_api.jobs.submit_inference(conv_model(seed=3), agent.pool, {"img": samples})

    job = device_api.jobs.submit_inference(conv_model(seed=3), ef.Device(agent.pool), {"image": samples})
    assert isinstance(job, ef.InferenceJob) and job.input_dataset_id
    np.testing.assert_array_equal(
        device_api.datasets.get(job.input_dataset_id).to_dict()["image"][1], samples[1]
    )

    lease = agent.lease()
    assert lease.job_id == job.id and lease.input_dataset and lease.input_dataset.id == job.input_dataset_id
    features = rng.random((2, 1, 4, 16, 16), dtype=np.float32)
    npz = io.BytesIO()
    write_npz({"features": features}, npz)
    agent.post_result(
        lease,
        data={
            "lease_token": lease.lease_token,
            "result": json.dumps({"runtime": "onnxruntime", "seconds": 0.1}),
        },
        files={"outputs": ("outputs.npz", npz.getvalue(), "application/octet-stream")},
    )

    outputs = job.download_output_data()
    assert list(outputs) == ["features"] and len(outputs["features"]) == 2
    np.testing.assert_array_equal(outputs["features"][1], features[1])
    assert job.result.outputs["features"].count == 2 and job.get_output_dataset().id == job.output_dataset_id
