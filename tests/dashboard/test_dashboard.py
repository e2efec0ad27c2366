"""The dashboard in a real headless Chromium against a real farm (gateway, Celery worker, device agent)."""

from __future__ import annotations

import os
import secrets
import signal
from urllib.parse import quote

import httpx
import numpy as np
import pytest

import edgefarm as ef
from tests import nets
from tests.dashboard.conftest import screenshot, sign_in

pytestmark = pytest.mark.e2e

JOB_TIMEOUT_MS = 240_000


def _api(gateway, method: str, path: str, **kwargs) -> httpx.Response:
    return httpx.request(method, f"{gateway.url}/api/v1{path}", timeout=30,
                         headers={"Authorization": f"Bearer {gateway.admin_token}"}, **kwargs)


def test_logged_out_pages_redirect_to_login_and_show_nothing(anonymous_page, gateway):
    page = anonymous_page
    page.goto(f"{gateway.url}/login")
    screenshot(page, "login")
    for path in ("/jobs", "/jobs/j_anything", "/devices", "/models", "/jobs?state=FAILED"):
        page.goto(f"{gateway.url}{path}")
        assert page.url == f"{gateway.url}/login?next={quote(path)}"
        assert page.locator("h1").inner_text() == "Sign in"
        assert page.locator("nav").count() == 0
    fragment = httpx.get(f"{gateway.url}/dashboard/fragments/jobs", timeout=10)
    assert fragment.status_code == 401
    forged = httpx.get(f"{gateway.url}/jobs", timeout=10, follow_redirects=False,
                       cookies={"edgefarm_session": "t_x.99999999999.00"})
    assert forged.status_code == 303 and forged.headers["location"].startswith("/login")

    page.goto(f"{gateway.url}/models")  # signing in leads back to the page that was asked for
    page.fill("#token", gateway.admin_token)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{gateway.url}/models")


def test_login_takes_a_user_token_refuses_others_and_keeps_only_a_signed_cookie(anonymous_page, gateway):
    page = anonymous_page
    sign_in(page, gateway.url, "ef_not-a-real-token")
    assert "unknown or revoked" in page.locator(".error").inner_text()

    agent = _api(gateway, "POST", "/tokens", json={"name": f"dash-agent-{secrets.token_hex(2)}", "role": "agent"})
    sign_in(page, gateway.url, agent.json()["token"])
    assert "agent token cannot open the dashboard" in page.locator(".error").inner_text()
    assert not page.context.cookies()

    user = _api(gateway, "POST", "/tokens", json={"name": f"dash-user-{secrets.token_hex(2)}", "role": "user"}).json()
    sign_in(page, gateway.url, user["token"])
    page.wait_for_url(f"{gateway.url}/jobs")
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "edgefarm_session" and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert user["token"] not in cookie["value"] and cookie["value"].startswith(user["id"] + ".")
    assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it

    # The cookie is the dashboard's only: the REST API still wants a bearer token.
    api_with_cookie = httpx.get(f"{gateway.url}/api/v1/jobs", cookies={cookie["name"]: cookie["value"]}, timeout=10)
    assert api_with_cookie.status_code == 401

    # Revoking the token ends its dashboard sessions at once.
    assert _api(gateway, "DELETE", f"/tokens/{user['id']}").status_code == 204
    page.goto(f"{gateway.url}/devices")
    assert page.url.startswith(f"{gateway.url}/login")

    sign_in(page, gateway.url, gateway.admin_token)
    page.wait_for_url(f"{gateway.url}/jobs")
    page.click("form.logout button")
    page.wait_for_url(f"{gateway.url}/login")
    page.goto(f"{gateway.url}/models")
    assert page.url.startswith(f"{gateway.url}/login")


def test_jobs_go_live_to_success_and_the_profile_page_shows_the_measured_numbers(
        farm, client, signed_in_page, tmp_path):
    page = signed_in_page
    pool = f"Dash CPU {secrets.token_hex(2)}"
    agent_name = f"dash-agent-{secrets.token_hex(2)}"
    agent = farm.farm.start_agent(farm.farm.host_agent_config(name=agent_name, pool=pool, serial="dash-0"),
                                  name=agent_name)
    try:
        page.goto(f"{farm.url}/jobs")
        page.evaluate("window.__sameDocument = 'yes'")  # gone if the page reloads
        source = nets.write_convnet_onnx(tmp_path / "convnet.onnx")
        device = ef.Device(pool)
        compiled = client.jobs.submit_compile(source, device, name=f"dash-compile-{secrets.token_hex(2)}",
                                              options="--target_runtime tflite")
        # ONNX Runtime measures each node, so the per-op table has times to compare.
        profiled = client.jobs.submit_profile(source, device, name=f"dash-profile-{secrets.token_hex(2)}",
                                              options="--max_profiler_iterations 30")
        refused = client.jobs.submit_profile(source, device, name=f"dash-refused-{secrets.token_hex(2)}",
                                             options="--compute_unit npu")  # the host device has no NPU

        for job in (compiled, profiled):
            page.wait_for_selector(f"tr[data-job-id='{job.id}']", timeout=30_000)
        for job in (compiled, profiled):
            page.wait_for_selector(f"tr[data-job-id='{job.id}'][data-state='SUCCESS']", timeout=JOB_TIMEOUT_MS)
        assert page.evaluate("window.__sameDocument") == "yes", "the jobs page reloaded instead of updating"
        compiled.refresh(), profiled.refresh()
        failed_row = page.wait_for_selector(f"tr[data-job-id='{refused.id}'][data-state='FAILED']",
                                            timeout=JOB_TIMEOUT_MS)
        assert failed_row.query_selector(".failure").inner_text() == refused.refresh().failure_reason
        profile_row = page.locator(f"tr[data-job-id='{profiled.id}']")
        assert "took" in profile_row.inner_text()

        images = nets.shapes(2, seed=5)[0]
        inference = client.jobs.submit_inference(compiled, device, {"image": [i[None] for i in images]},
                                                 name=f"dash-infer-{secrets.token_hex(2)}")
        page.wait_for_selector(f"tr[data-job-id='{inference.id}'][data-state='SUCCESS']", timeout=JOB_TIMEOUT_MS)
        assert page.evaluate("window.__sameDocument") == "yes"
        inference.refresh()
        screenshot(page, "jobs")

        page.goto(f"{farm.url}/jobs?type=profile&name=dash-")
        types = page.locator("tr[data-job-id]").evaluate_all("rows => rows.map(r => r.dataset.type)")
        assert set(types) == {"profile"} and len(types) >= 2
        page.goto(f"{farm.url}/jobs?state=FAILED")
        assert page.locator(f"tr[data-job-id='{refused.id}']").count() == 1
        assert page.locator(f"tr[data-job-id='{profiled.id}']").count() == 0

        profile = profiled.download_profile()
        summary = profile["execution_summary"]
        times = summary["all_inference_times"]
        page.goto(f"{farm.url}/jobs/{profiled.id}")
        assert page.locator("#job-state").inner_text() == "SUCCESS"
        assert page.locator(".timeline li").count() == len(profiled.events)

        histogram = page.locator("#histogram svg.histogram")
        assert int(histogram.get_attribute("data-count")) == len(times) == 30
        bins = [int(n) for n in page.locator("#histogram rect.bin").evaluate_all(
            "bars => bars.map(b => b.dataset.count)")]
        assert sum(bins) == len(times) and len(bins) == int(histogram.get_attribute("data-bins"))
        lo, hi = min(times), max(times)
        width = (hi - lo) / len(bins) or 1
        expected = np.bincount([min(len(bins) - 1, int((t - lo) // width)) for t in times], minlength=len(bins))
        assert bins == expected.tolist()
        for key in ("min", "median", "mean", "p90", "p99"):
            shown = float(page.locator(f"[data-stat='{key}']").get_attribute("data-us"))
            assert shown == pytest.approx(summary["inference_stats"][key])
        assert page.locator("#peak-memory").inner_text().strip() != ""

        ops = profile["execution_detail"]
        rows = page.locator("#op-table tbody tr")
        assert rows.count() == len(ops) > 0
        names = rows.evaluate_all("rows => rows.map(r => r.cells[0].textContent.trim())")
        assert sorted(names) == sorted(op["name"] for op in ops)
        shown_times = [float(t) for t in rows.evaluate_all("rows => rows.map(r => r.cells[4].dataset.value)")]
        assert shown_times == sorted((op["execution_time"] for op in ops), reverse=True)
        total = sum(op["execution_time"] for op in ops)
        shares = [float(s) for s in rows.evaluate_all("rows => rows.map(r => r.cells[5].dataset.value)")]
        assert shares[0] == pytest.approx(max(op["execution_time"] for op in ops) / total)
        assert set(rows.evaluate_all("rows => rows.map(r => r.cells[2].textContent)")) == {
            op["compute_unit"] for op in ops}
        screenshot(page, "job-profile")
        page.click("#op-table th:has-text('Time')")  # sorted slowest first; a click turns it around
        first = float(page.locator("#op-table tbody tr").first.locator("td").nth(4).get_attribute("data-value"))
        assert first == min(op["execution_time"] for op in ops)
        assert page.locator("#download").get_attribute("href") == f"/jobs/{profiled.id}/download"

        page.goto(f"{farm.url}/jobs/{compiled.id}")
        result = compiled.result
        compiled_page = page.locator("main").inner_text()
        for tensor in result.source_inputs + result.target_outputs:
            assert tensor.name in compiled_page
        assert "Size" in compiled_page and result.converter in compiled_page
        # The verification a person signs off on: verdict, how it was measured, one row per output with its figures.
        assert page.locator("#verdict").get_attribute("data-verdict") == result.verification.verdict
        assert f"{result.verification.samples} sample(s) of {result.verification.inputs}" in compiled_page
        rows = page.locator("#output-checks tbody tr")
        assert rows.count() == len(result.verification.outputs)
        first = result.verification.outputs[0]
        assert first.name in rows.first.inner_text() and f"{first.cosine:.6f}" in rows.first.inner_text()
        downloaded = page.context.request.get(f"{farm.url}/jobs/{compiled.id}/download")
        assert downloaded.ok and len(downloaded.body()) == result.target_size
        screenshot(page, "job-compile")

        page.goto(f"{farm.url}/jobs/{inference.id}")
        outputs = page.locator("#outputs").inner_text()
        assert all(name in outputs for name in inference.result.outputs)
        for name, samples in inference.download_output_data().items():  # the summary is of the real outputs
            values = np.stack(samples)
            row = page.locator("#outputs tbody tr", has_text=name)
            for key, expected in (("min", values.min()), ("max", values.max()), ("mean", values.mean())):
                shown = float(row.locator(f"td[data-stat='{key}']").inner_text())
                assert shown == pytest.approx(float(expected), rel=1e-3, abs=1e-6)
        screenshot(page, "job-inference")

        page.goto(f"{farm.url}/devices")
        row = page.locator(f"section.pool[data-pool='{pool}'] tr[data-device-id]")
        assert row.count() == 1
        assert row.get_attribute("data-state") == "online"
        assert agent_name in row.inner_text() and profiled.name in row.inner_text()
        screenshot(page, "devices")

        page.goto(f"{farm.url}/models")
        assert page.locator(f"tr[data-model-id='{compiled.target_model_id}']").count() == 1
        screenshot(page, "models")
    finally:
        os.killpg(agent.popen.pid, signal.SIGTERM)
        agent.popen.wait()
        farm.farm.processes.remove(agent)


def test_a_queued_job_shows_its_wait_and_its_page_follows_a_state_change(farm, client, signed_in_page, tmp_path):
    page = signed_in_page
    pool = f"Dash gone {secrets.token_hex(2)}"
    agent_name = f"dash-gone-{secrets.token_hex(2)}"
    agent = farm.farm.start_agent(farm.farm.host_agent_config(name=agent_name, pool=pool, serial="gone-0"),
                                  name=agent_name)
    os.killpg(agent.popen.pid, signal.SIGTERM)  # registered, then gone: its jobs wait in the queue
    agent.popen.wait()
    farm.farm.processes.remove(agent)

    job = client.jobs.submit_profile(nets.write_convnet_onnx(tmp_path / "convnet.onnx"), ef.Device(pool),
                                     name=f"dash-queued-{secrets.token_hex(2)}")
    page.goto(f"{farm.url}/jobs?state=CREATED")
    row = page.locator(f"tr[data-job-id='{job.id}']")
    assert "waiting" in row.inner_text()
    waiting = client.jobs.list(state="CREATED", limit=200)  # the queue, newest first
    device_jobs = [j for j in waiting if j.data.type.value != "compile"]
    assert f"#{len(device_jobs) - device_jobs.index(job)} in queue" in row.inner_text()

    gone = next(d for d in client.devices.list(name=pool))
    page.goto(f"{farm.url}/jobs?device={gone.id}")  # nothing ran there: the device filter shows no job
    assert page.locator("tr[data-job-id]").count() == 0

    page.goto(f"{farm.url}/jobs/{job.id}")
    assert page.locator("#job-state").get_attribute("data-state") == "CREATED"
    page.evaluate("window.__before = 'yes'")
    job.cancel()
    page.wait_for_selector("#job-state[data-state='CANCELLED']", timeout=15_000)
    assert page.evaluate("window.__before") is None  # the page reloaded itself to show the new state
    events = job.refresh().events
    assert page.locator(".timeline li").count() == len(events) and events[-1].state.value == "CANCELLED"
    assert page.locator(".timeline li").last.inner_text().startswith("CANCELLED")


def test_a_pipeline_page_shows_its_jobs_and_every_gate_and_releases_link_to_it(farm, client, signed_in_page, tmp_path):
    from tests.e2e.test_device_jobs import host_device

    page = signed_in_page
    # Opset 16: bytes of its own, so the compile cache never links this test with the compile tests' jobs.
    source = nets.write_onnx(tmp_path / "segmenter.onnx", nets.tiny_segmenter(),
                             {"image": (1, 3, nets.IMAGE_SIZE, nets.IMAGE_SIZE)}, ["mask"], opset=16)
    images, masks, _ = nets.shapes(6, seed=5)
    name = f"dash-seg-{secrets.token_hex(2)}"
    with host_device(farm) as pool:
        pipeline = client.pipelines.submit(
            source, name, [ef.Device(pool)], compile_options="--target_runtime tflite",
            eval_inputs={"image": list(images[:, None])}, ground_truth={"mask": list(masks[:, None])},
            profile_options="--max_profiler_iterations 5", metric="iou",
            gates={"max_metric_drop": 0.02, "max_latency_ms": 5000})
        assert pipeline.wait(timeout=300) == ef.PipelineState.SUCCESS, pipeline.failure_reason

    page.goto(f"{farm.url}/pipelines")
    page.click(f"tr[data-pipeline-id='{pipeline.id}'] a")
    page.wait_for_selector("#pipeline-state:text('SUCCESS')")
    assert page.locator("#pipeline-gates tr[data-passed='yes']").count() == 2
    assert page.locator("#pipeline-gates tr[data-passed='no']").count() == 0
    assert page.locator("#pipeline-devices tbody tr").count() == 1
    jobs = page.locator("#pipeline-jobs a").all_inner_texts()
    assert jobs == ["compile", "FP32 reference", f"profile on {pool}", f"inference on {pool}"]
    screenshot(page, "pipeline")

    page.goto(f"{farm.url}/models#releases")
    page.click(f"section[data-registered-model='{name}'] a[href='/pipelines/{pipeline.id}']")
    page.wait_for_selector("#pipeline-state")
    assert page.url.endswith(f"/pipelines/{pipeline.id}")
