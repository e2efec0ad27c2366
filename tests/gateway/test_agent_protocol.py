"""The agent protocol, spoken over HTTP to a real gateway process: register, lease, progress, results.

These tests play the agent's part by hand to pin down the gateway's side of the contract (ownership, leases,
idempotency, expiry); the real agent program is exercised end to end in tests/e2e.
"""

from __future__ import annotations

import io
import json
import secrets
import threading
import time

import httpx
import numpy as np
import pytest

from tests.gateway.test_api import conv_onnx, npz, upload


@pytest.fixture
def api(gateway):
    with httpx.Client(base_url=f"{gateway.url}/api/v1", timeout=30,
                      headers={"Authorization": f"Bearer {gateway.admin_token}"}) as client:
        yield client


def agent_client(gateway, api, **scope) -> httpx.Client:
    """A client with a new agent token; `scope` binds it (agent=NAME, pools=[...])."""
    created = api.post("/tokens", json={"name": "agent", "role": "agent", **scope})
    assert created.status_code == 201, created.text
    return httpx.Client(base_url=f"{gateway.url}/api/v1", timeout=60,
                        headers={"Authorization": f"Bearer {created.json()['token']}"})


def register(agent: httpx.Client, name: str, devices: list[tuple[str, str]]) -> dict:
    response = agent.post("/agent/register", json={
        "agent_name": name, "version": "test",
        "devices": [{"name": pool, "serial": serial, "os": "linux 6.1", "attributes": ["framework:onnx"]}
                    for pool, serial in devices]})
    assert response.status_code == 200, response.text
    return response.json()


def lease(agent: httpx.Client, registered: dict, wait: float = 0) -> dict | None:
    response = agent.post("/agent/lease", json={"agent_id": registered["agent_id"], "wait_seconds": wait,
                                                "device_ids": [d["id"] for d in registered["devices"]]})
    assert response.status_code in (200, 204), response.text
    return response.json() if response.status_code == 200 else None


def profile_of(device: dict) -> str:
    times = [1000.0, 1100.0, 1200.0]
    stats = {"min": 1000.0, "median": 1100.0, "mean": 1100.0, "p90": 1180.0, "p99": 1198.0, "std": 81.6}
    return json.dumps({
        "execution_summary": {"estimated_inference_time": 1100.0, "estimated_inference_peak_memory": 1 << 20,
                              "first_load_time": 5000.0, "warm_load_time": 2000.0, "all_inference_times": times,
                              "inference_stats": stats, "iterations": 3, "compute_unit": "cpu"},
        "execution_detail": [{"name": "conv", "type": "Conv", "compute_unit": "CPU", "execution_time": 900.0}],
        "runtime": "onnxruntime 1.23.0",
        "device": {"name": device["name"], "serial": device["serial"]}})


def pool() -> str:
    return f"Test Board {secrets.token_hex(3)}"


def test_register_is_idempotent_and_retires_undeclared_devices(gateway, api):
    name, agent = f"lab-{secrets.token_hex(3)}", agent_client(gateway, api)
    first = register(agent, name, [("Board A", "a-1"), ("Board A", "a-2")])
    again = register(agent, name, [("Board A", "a-1"), ("Board A", "a-2")])
    assert first["agent_id"] == again["agent_id"]
    assert {d["id"] for d in first["devices"]} == {d["id"] for d in again["devices"]}
    listed = api.get("/devices", params={"name": "Board A"}).json()
    assert sorted(d["serial"] for d in listed if d["agent_name"] == name) == ["a-1", "a-2"]
    assert all(d["state"] == "online" for d in listed if d["agent_name"] == name)

    shrunk = register(agent, name, [("Board A", "a-1")])
    assert [d["serial"] for d in shrunk["devices"]] == ["a-1"]
    assert [d["serial"] for d in api.get("/devices", params={"name": "Board A"}).json()
            if d["agent_name"] == name] == ["a-1"]

    impostor = agent_client(gateway, api)
    stolen = impostor.post("/agent/register", json={"agent_name": name, "devices": []})
    assert stolen.status_code == 403 and "another token" in stolen.json()["detail"]


def test_an_agent_token_serves_only_its_pools_and_its_one_agent(gateway, api):
    mine, theirs, name = pool(), pool(), f"lab-{secrets.token_hex(3)}"
    scoped = agent_client(gateway, api, pools=[mine])
    refused = scoped.post("/agent/register", json={"agent_name": name, "devices": [
        {"name": mine, "serial": "s1"}, {"name": theirs, "serial": "s2"}]})
    assert refused.status_code == 403
    assert f"may serve the pools {mine}, not {theirs}" in refused.json()["detail"]
    assert not [d for d in api.get("/devices").json() if d["agent_name"] == name]  # nothing registered

    registered = register(scoped, name, [(mine, "s1")])
    assert [d["name"] for d in registered["devices"]] == [mine]
    # The token is now bound to this agent: it cannot stand up a second one.
    second = scoped.post("/agent/register", json={"agent_name": f"{name}-2", "devices": []})
    assert second.status_code == 403 and f"bound to agent {name!r}" in second.json()["detail"]

    named = agent_client(gateway, api, agent=f"{name}-named")
    assert named.post("/agent/register", json={"agent_name": name, "devices": []}).status_code == 403
    register(named, f"{name}-named", [(theirs, "t1")])

    listed = {t["id"]: t for t in api.get("/tokens").json()}
    assert any(t["agent"] == name and t["pools"] == [mine] for t in listed.values())
    bad = api.post("/tokens", json={"name": "u", "role": "user", "pools": [mine]})
    assert bad.status_code == 400 and "agent tokens only" in bad.json()["detail"]


def test_a_revoked_agent_token_can_be_replaced(gateway, api):
    name = f"lab-{secrets.token_hex(3)}"
    created = api.post("/tokens", json={"name": "old", "role": "agent"}).json()
    with httpx.Client(base_url=f"{gateway.url}/api/v1", timeout=30,
                      headers={"Authorization": f"Bearer {created['token']}"}) as old:
        first = register(old, name, [(pool(), "s1")])
    assert api.delete(f"/tokens/{created['id']}").status_code == 204
    again = register(agent_client(gateway, api, agent=name), name, [(first["devices"][0]["name"], "s1")])
    assert again["agent_id"] == first["agent_id"] and again["devices"][0]["id"] == first["devices"][0]["id"]


def test_roles_keep_agents_and_users_apart(gateway, api):
    agent = agent_client(gateway, api)
    assert agent.post("/jobs/compile", json={"model_id": "m"}).status_code == 403
    assert api.post("/agent/register", json={"agent_name": "x", "devices": []}).status_code == 403


def test_device_jobs_need_an_existing_device_and_valid_options(gateway, api):
    model = upload(api, conv_onnx(seed=20)).json()
    missing = api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": "Pixel 99"}})
    assert missing.status_code == 400
    assert "no device matches 'Pixel 99'; the farm's devices are" in missing.json()["detail"]

    name = pool()
    register(agent_client(gateway, api), f"lab-{secrets.token_hex(3)}", [(name, "s1")])
    bad = api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": name},
                                          "options": "--max_profiler_iterations zero"})
    assert bad.status_code == 400 and "--max_profiler_iterations must be a whole number" in bad.json()["detail"]
    range_miss = api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": name, "os": "[7,8)"}})
    assert range_miss.status_code == 400
    in_range = api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": name, "os": "linux [6,7)"}})
    assert in_range.status_code == 201 and in_range.json()["state"] == "CREATED"
    api.post(f"/jobs/{in_range.json()['id']}/cancel")


def test_a_compile_names_a_known_pool_or_none(gateway, api):
    """A typo in the device ("Host-CPU") is refused at submit with the farm's pools, as profile jobs are; a
    compile that names no device is allowed (the target depends only on the options) and says so."""
    model = upload(api, conv_onnx(seed=21)).json()
    typo = api.post("/jobs/compile", json={"model_id": model["id"], "device": {"name": "Host-CPU"}})
    assert typo.status_code == 400
    assert "no device matches 'Host-CPU'; the farm's devices are" in typo.json()["detail"]
    name = pool()
    register(agent_client(gateway, api), f"lab-{secrets.token_hex(3)}", [(name, "s1")])
    assert name in api.post("/jobs/compile", json={"model_id": model["id"], "device": {"name": "Host-CPU"}}
                            ).json()["detail"]
    known = api.post("/jobs/compile", json={"model_id": model["id"], "device": {"name": name}})
    assert known.status_code == 201 and known.json()["events"][0]["message"] == f"submitted: for {name}"
    anywhere = api.post("/jobs/compile", json={"model_id": model["id"], "options": "--quantize_full_type float16"})
    assert anywhere.status_code == 201
    assert "for no particular device" in anywhere.json()["events"][0]["message"]
    for job in (known, anywhere):
        api.post(f"/jobs/{job.json()['id']}/cancel")


def test_profile_job_lease_progress_result(gateway, api):
    name = pool()
    agent = agent_client(gateway, api)
    registered = register(agent, f"lab-{secrets.token_hex(3)}", [(name, "s1")])
    assert lease(agent, registered) is None  # nothing queued: an immediate 204

    model = upload(api, conv_onnx(seed=21)).json()
    job = api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": name},
                                          "options": "--max_profiler_iterations 3"}).json()
    granted = lease(agent, registered)
    assert granted["job_id"] == job["id"] and granted["job_type"] == "profile"
    assert granted["model"]["id"] == model["id"] and granted["options"] == "--max_profiler_iterations 3"
    assert lease(agent, registered) is None  # the device is busy now, and the job is taken
    token = granted["lease_token"]
    assert api.get(f"/jobs/{job['id']}").json()["state"] == "PROVISIONING_DEVICE"

    model_bytes = agent.get(f"/agent/jobs/{job['id']}/model", headers={"X-Lease-Token": token})
    assert model_bytes.content == conv_onnx(seed=21)
    assert agent.get(f"/agent/jobs/{job['id']}/model", headers={"X-Lease-Token": "nope"}).status_code == 409

    assert agent.post(f"/agent/jobs/{job['id']}/progress",
                      json={"lease_token": token, "state": "MEASURING_PERFORMANCE"}).status_code == 204
    device = api.get("/devices", params={"name": name}).json()[0]
    assert device["state"] == "busy" and device["current_job_id"] == job["id"]

    posted = agent.post(f"/agent/jobs/{job['id']}/result",
                        data={"lease_token": token, "profile": profile_of(registered["devices"][0])})
    assert posted.status_code == 204, posted.text
    retried = agent.post(f"/agent/jobs/{job['id']}/result",
                         data={"lease_token": token, "profile": profile_of(registered["devices"][0])})
    assert retried.status_code == 204  # idempotent per lease token
    assert agent.post(f"/agent/jobs/{job['id']}/result",
                      data={"lease_token": "other", "profile": "{}"}).status_code == 409
    # The finished job's lease token is dead to every other agent, and for anything but that retry.
    other = agent_client(gateway, api)
    assert other.post(f"/agent/jobs/{job['id']}/result",
                      data={"lease_token": token, "profile": profile_of(registered["devices"][0])}).status_code == 409
    assert other.post(f"/agent/jobs/{job['id']}/failure", json={"lease_token": token, "reason": "x"}).status_code == 409
    assert agent.post(f"/agent/jobs/{job['id']}/progress", json={"lease_token": token}).status_code == 409
    assert agent.get(f"/agent/jobs/{job['id']}/model", headers={"X-Lease-Token": token}).status_code == 409

    done = api.get(f"/jobs/{job['id']}").json()
    assert done["state"] == "SUCCESS" and done["device_id"] == registered["devices"][0]["id"]
    assert done["result"]["execution_summary"]["estimated_inference_time"] == 1100.0
    assert [e["state"] for e in done["events"]] == ["CREATED", "PROVISIONING_DEVICE", "MEASURING_PERFORMANCE",
                                                   "SUCCESS"]
    assert api.get("/devices", params={"name": name}).json()[0]["state"] == "online"


def test_agents_only_get_jobs_for_their_own_devices(gateway, api):
    pool_a, pool_b = pool(), pool()
    agent_a, agent_b = agent_client(gateway, api), agent_client(gateway, api)
    reg_a = register(agent_a, f"lab-a-{secrets.token_hex(3)}", [(pool_a, "s1")])
    reg_b = register(agent_b, f"lab-b-{secrets.token_hex(3)}", [(pool_b, "s1")])
    model = upload(api, conv_onnx(seed=22)).json()
    for_a = api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": pool_a}}).json()
    for_b = api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": pool_b}}).json()
    assert lease(agent_b, reg_b)["job_id"] == for_b["id"]
    assert lease(agent_a, reg_a)["job_id"] == for_a["id"]
    other = agent_b.post(f"/agent/jobs/{for_a['id']}/progress", json={"lease_token": "guess"})
    assert other.status_code == 409
    for job in (for_a, for_b):
        api.post(f"/jobs/{job['id']}/cancel")


def test_jobs_for_a_pool_nobody_serves_do_not_hide_the_jobs_behind_them(gateway, api):
    """201 older jobs wait for a pool whose only device's agent never asks for work (one more than a lease once
    read); a free device of another pool still gets its job."""
    unserved, served = pool(), pool()
    register(agent_client(gateway, api), f"lab-idle-{secrets.token_hex(3)}", [(unserved, "s1")])
    agent = agent_client(gateway, api)
    registered = register(agent, f"lab-busy-{secrets.token_hex(3)}", [(served, "s1")])
    model = upload(api, conv_onnx(seed=29)).json()
    waiting = [api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": unserved}}).json()
               for _ in range(201)]
    mine = api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": served}}).json()
    try:
        granted = lease(agent, registered)
        assert granted is not None and granted["job_id"] == mine["id"]
    finally:
        for job in [*waiting, mine]:
            api.post(f"/jobs/{job['id']}/cancel")


def test_long_poll_wakes_when_a_job_arrives(gateway, api):
    name = pool()
    agent = agent_client(gateway, api)
    registered = register(agent, f"lab-{secrets.token_hex(3)}", [(name, "s1")])
    model = upload(api, conv_onnx(seed=23)).json()
    got: dict = {}

    def poll() -> None:
        started = time.monotonic()
        got["lease"], got["seconds"] = lease(agent, registered, wait=20), time.monotonic() - started

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.5)
    job = api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": name}}).json()
    poller.join(30)
    assert got["lease"]["job_id"] == job["id"]
    assert got["seconds"] < 20  # answered because the job arrived, not because the poll ran out
    api.post(f"/jobs/{job['id']}/cancel")


def test_an_expired_lease_returns_the_job_to_the_queue_then_fails_it(gateway, api):
    name = pool()
    model = upload(api, conv_onnx(seed=24)).json()
    agents = [agent_client(gateway, api) for _ in range(3)]
    registered = [register(a, f"lab-{i}-{secrets.token_hex(3)}", [(name, "s1")]) for i, a in enumerate(agents)]
    job = api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": name}}).json()
    holders = []
    for agent, reg in zip(agents, registered):  # each agent takes the job, then "dies" silently
        granted = lease(agent, reg, wait=15)
        assert granted is not None and granted["job_id"] == job["id"]
        holders.append(granted["lease_token"])
        deadline = time.monotonic() + 30
        while api.get(f"/jobs/{job['id']}").json()["state"] == "PROVISIONING_DEVICE":
            assert time.monotonic() < deadline
            time.sleep(0.3)
    final = api.get(f"/jobs/{job['id']}").json()
    assert final["state"] == "FAILED" and "device was lost 3 times" in final["failure_reason"]
    assert sum("requeued" in e["message"] for e in final["events"]) == 2
    stale = agents[0].post(f"/agent/jobs/{job['id']}/result",
                           data={"lease_token": holders[0], "profile": profile_of(registered[0]["devices"][0])})
    assert stale.status_code == 409


def test_inference_inputs_are_checked_and_outputs_become_a_dataset(gateway, api):
    name = pool()
    agent = agent_client(gateway, api)
    registered = register(agent, f"lab-{secrets.token_hex(3)}", [(name, "s1")])
    model = upload(api, conv_onnx(seed=25)).json()
    images = np.random.default_rng(0).standard_normal((2, 1, 3, 16, 16)).astype(np.float32)

    def submit(**arrays) -> httpx.Response:
        dataset = upload(api, npz(**arrays), kind="datasets").json()
        return api.post("/jobs/inference", json={"model_id": model["id"], "device": {"name": name},
                                                 "input_dataset_id": dataset["id"]})

    wrong_name = submit(pixels=images)
    assert wrong_name.status_code == 400 and "missing: image, unknown: pixels" in wrong_name.json()["detail"]
    wrong_shape = submit(image=images[:, :, :, :8])
    assert wrong_shape.status_code == 400 and "(1, 3, 16, 16)" in wrong_shape.json()["detail"]
    wrong_dtype = submit(image=images.astype(np.float64))
    assert wrong_dtype.status_code == 400 and "takes float32; got float64" in wrong_dtype.json()["detail"]

    job = submit(image=images).json()
    granted = lease(agent, registered)
    token = granted["lease_token"]
    assert granted["input_dataset"]["entries"]["image"]["count"] == 2
    inputs = agent.get(f"/agent/jobs/{job['id']}/inputs", headers={"X-Lease-Token": token})
    assert np.load(io.BytesIO(inputs.content))["image"].shape == (2, 1, 3, 16, 16)
    agent.post(f"/agent/jobs/{job['id']}/progress", json={"lease_token": token, "state": "RUNNING_INFERENCE"})
    outputs = npz(features=np.ones((2, 1, 4, 16, 16), np.float32))
    posted = agent.post(f"/agent/jobs/{job['id']}/result", data={
        "lease_token": token, "result": json.dumps({"runtime": "onnxruntime 1.23.0", "seconds": 0.01})},
        files={"outputs": ("outputs.npz", outputs)})
    assert posted.status_code == 204, posted.text
    done = api.get(f"/jobs/{job['id']}").json()
    assert done["state"] == "SUCCESS"
    assert done["result"]["outputs"] == {"features": {"count": 2, "shape": [1, 4, 16, 16], "dtype": "float32"}}
    assert api.get(f"/datasets/{done['result']['output_dataset_id']}/download").content == outputs


def test_a_cancelled_job_tells_its_agent_to_stop(gateway, api):
    name = pool()
    agent = agent_client(gateway, api)
    registered = register(agent, f"lab-{secrets.token_hex(3)}", [(name, "s1")])
    model = upload(api, conv_onnx(seed=26)).json()
    job = api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": name}}).json()
    token = lease(agent, registered)["lease_token"]
    assert api.post(f"/jobs/{job['id']}/cancel").json()["state"] == "CANCELLED"
    stop = agent.post(f"/agent/jobs/{job['id']}/progress", json={"lease_token": token})
    assert stop.status_code == 409 and "drop the job" in stop.json()["detail"]
    failure = agent.post(f"/agent/jobs/{job['id']}/failure", json={"lease_token": token, "reason": "x"})
    assert failure.status_code == 409
    assert api.get("/devices", params={"name": name}).json()[0]["state"] == "online"


def test_a_job_for_an_offline_pool_waits_and_says_so(gateway, api):
    name = pool()
    agent = agent_client(gateway, api)
    register(agent, f"lab-{secrets.token_hex(3)}", [(name, "s1")])
    deadline = time.monotonic() + 30
    while api.get("/devices", params={"name": name}).json()[0]["state"] != "offline":  # no heartbeats: 5 s
        assert time.monotonic() < deadline
        time.sleep(0.5)
    model = upload(api, conv_onnx(seed=27)).json()
    job = api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": name}}).json()
    assert job["state"] == "CREATED"
    assert job["events"][-1]["message"] == f"waiting: every matching device ({name}) is offline"
    api.post(f"/jobs/{job['id']}/cancel")


def test_inference_outputs_may_be_as_large_as_a_dataset(gateway, api):
    """Outputs travel in the result request: the dataset limit applies there, not the small JSON one."""
    name = pool()
    agent = agent_client(gateway, api)
    registered = register(agent, f"lab-{secrets.token_hex(3)}", [(name, "s1")])
    model = upload(api, conv_onnx(seed=28)).json()
    images = np.zeros((2, 1, 3, 16, 16), np.float32)
    dataset = upload(api, npz(image=images), kind="datasets").json()
    job = api.post("/jobs/inference", json={"model_id": model["id"], "device": {"name": name},
                                            "input_dataset_id": dataset["id"]}).json()
    token = lease(agent, registered)["lease_token"]
    big = npz(features=np.ones((2, 1, 4, 512, 640), np.float32))  # 10 MB, over the 4 MiB JSON limit
    posted = agent.post(f"/agent/jobs/{job['id']}/result", data={
        "lease_token": token, "result": json.dumps({"runtime": "onnxruntime 1.23.0", "seconds": 0.5})},
        files={"outputs": ("outputs.npz", big)})
    assert posted.status_code == 204, posted.text
    assert api.get(f"/jobs/{job['id']}").json()["state"] == "SUCCESS"


def test_a_long_poll_whose_agent_has_gone_takes_no_job(gateway, api):
    """An agent that dies while its lease request waits must not be handed the next job (it would sit out
    the whole lease before anyone else could run it)."""
    name = pool()
    agent = agent_client(gateway, api)
    registered = register(agent, f"lab-{secrets.token_hex(3)}", [(name, "s1")])
    with pytest.raises(httpx.ReadTimeout):  # the agent gives up on its poll and closes the connection
        agent.post("/agent/lease", timeout=0.5, json={"agent_id": registered["agent_id"], "wait_seconds": 20,
                                                      "device_ids": [registered["devices"][0]["id"]]})
    agent.close()
    time.sleep(0.5)
    model = upload(api, conv_onnx(seed=29)).json()
    job = api.post("/jobs/profile", json={"model_id": model["id"], "device": {"name": name}}).json()
    time.sleep(1.5)  # the abandoned poll wakes on the new job, and must see its agent gone
    assert api.get(f"/jobs/{job['id']}").json()["state"] == "CREATED"
    api.post(f"/jobs/{job['id']}/cancel")
