"""What the dashboard computes and renders, without a browser: shares, timings, the fallback warning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from edgefarm.wire import DeviceSelector, JobOut, JobState, JobType
from edgefarm_gateway.dashboard import views
from edgefarm_gateway.dashboard.endpoints import templates

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _job(state: JobState, **fields) -> JobOut:
    return JobOut(id="j1", type=JobType.PROFILE, name="p", state=state, model_id="m1",
                  device=DeviceSelector(name="Pi 5"), options="", created_at=T0, updated_at=T0, **fields)


def _profile(cpu_fallback: bool, warnings: list[str]) -> dict:
    times = [100.0, 110.0, 120.0, 400.0]
    return {"runtime": "litert 2.1.0", "warnings": warnings, "device": {"name": "Pi 5", "serial": "a"},
            "execution_summary": {"estimated_inference_time": 115.0, "estimated_inference_peak_memory": 2048,
                                  "first_load_time": 5000.0, "warm_load_time": 900.0, "all_inference_times": times,
                                  "inference_stats": {"min": 100.0, "median": 115.0, "mean": 182.5, "p90": 316.0,
                                                      "p99": 391.6, "std": 126.0},
                                  "iterations": 4, "compute_unit": "npu", "delegate": "libvx_delegate.so",
                                  "delegated_ops": 2, "total_ops": 3, "cpu_fallback": cpu_fallback},
            "execution_detail": [
                {"name": "conv", "type": "CONV_2D", "compute_unit": "NPU", "delegate": "libvx_delegate.so",
                 "execution_time": 30.0},
                {"name": "softmax", "type": "SOFTMAX", "compute_unit": "CPU", "execution_time": 90.0},
                {"name": "add", "type": "ADD", "compute_unit": "NPU", "delegate": "libvx_delegate.so"}]}


def test_ops_are_slowest_first_with_their_share_of_the_op_time():
    view = views.profile_view(_profile(False, []))
    assert [op["name"] for op in view["ops"]] == ["softmax", "conv", "add"]
    assert [op["share"] for op in view["ops"]] == [0.75, 0.25, 0.0]
    assert view["units"] == {"NPU": 2, "CPU": 1}


def test_queued_jobs_show_their_wait_and_finished_ones_their_duration():
    now = T0 + timedelta(seconds=75)
    assert views.timing(_job(JobState.CREATED), now) == ("waiting", "1 min 15 s")
    running = _job(JobState.MEASURING_PERFORMANCE, started_at=T0 + timedelta(seconds=5))
    assert views.timing(running, now) == ("running", "1 min 10 s")
    done = _job(JobState.SUCCESS, started_at=T0 + timedelta(seconds=1), finished_at=T0 + timedelta(seconds=3.5))
    assert views.timing(done, now) == ("took", "2.5 s")
    naive = _job(JobState.CREATED).model_copy(update={"created_at": T0.replace(tzinfo=None)})
    assert views.timing(naive, now) == ("waiting", "1 min 15 s")  # SQLite's naive UTC


def _render_job_page(result: dict) -> str:
    job = _job(JobState.SUCCESS, result=result, finished_at=T0, started_at=T0)
    model = SimpleNamespace(id="m1", name="net", format="tflite", size=1000)
    request = SimpleNamespace(url=SimpleNamespace(path="/jobs/j1", query=""))
    return templates.env.get_template("job.html").render(
        request=request, user=SimpleNamespace(name="me", role="user"), job=job, model=model, target=None,
        result=result, profile=views.profile_view(result), ran_on="", log_tail="", label_and_time=("took", "0 s"))


def test_cpu_fallback_and_warnings_are_shown_as_a_warning():
    html = _render_job_page(_profile(True, ["1 of 3 ops stayed on the CPU"]))
    assert 'id="profile-warnings"' in html
    assert "CPU fallback: part of the model ran on the CPU although npu was asked" in html
    assert "1 of 3 ops stayed on the CPU" in html
    assert 'id="profile-warnings"' not in _render_job_page(_profile(False, []))


def test_after_sign_in_the_user_goes_back_only_to_a_page_of_this_site():
    from edgefarm_gateway.dashboard.endpoints import _safe_next

    assert _safe_next("/jobs/j1?tab=ops") == "/jobs/j1?tab=ops"
    for elsewhere in ("https://evil.example", "//evil.example", "/\\evil.example", "", None):
        assert _safe_next(elsewhere) == "/jobs"


def test_a_cookie_made_from_the_database_alone_is_refused(gateway, tmp_path):
    """The cookie's MAC needs the gateway's session secret: a stolen copy of the token table cannot forge one."""
    import hashlib
    import hmac
    import time

    import httpx

    from edgefarm_gateway.dashboard.session import COOKIE, session_secret
    from edgefarm_gateway.settings import Settings

    admin = {"Authorization": f"Bearer {gateway.admin_token}"}
    token_id = next(t["id"] for t in httpx.get(f"{gateway.url}/api/v1/tokens", headers=admin).json()
                    if t["role"] == "admin")
    token_hash = hashlib.sha256(gateway.admin_token.encode()).hexdigest()
    issued = int(time.time())
    forged_mac = hmac.new(token_hash.encode(), f"dashboard:{token_id}.{issued}".encode(), hashlib.sha256).hexdigest()
    forged = httpx.get(f"{gateway.url}/jobs", cookies={COOKIE: f"{token_id}.{issued}.{forged_mac}"})
    assert forged.status_code in (302, 303, 307) and "/login" in forged.headers["location"]

    key = session_secret(Settings(data_dir=gateway.data_dir))  # the gateway's own secret signs a valid one
    mac = hmac.new(key + token_hash.encode(), f"dashboard:{token_id}.{issued}".encode(), hashlib.sha256).hexdigest()
    signed = httpx.get(f"{gateway.url}/jobs", cookies={COOKIE: f"{token_id}.{issued}.{mac}"})
    assert signed.status_code == 200

    settings = Settings(data_dir=tmp_path)
    assert session_secret(settings) == session_secret(settings)  # made once, then kept
    assert (tmp_path / "session-secret").stat().st_mode & 0o777 == 0o600
