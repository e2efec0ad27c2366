"""Retries, timeouts and error mapping against a real HTTP server that misbehaves on purpose."""

from __future__ import annotations

import itertools
import logging
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import edgefarm as ef
import httpx
import pytest
from edgefarm._http import Transport, parse_retry_after

from tests.sdk.peer import Reply

NOT_FOUND = {
    "error": "not_found",
    "detail": "model m_x does not exist; list models with `edgefarm models list`",
}


def transport(peer, **kwargs) -> Transport:
    settings = {"max_retries": 2, "initial_backoff": 0.01, "max_backoff": 0.05, "timeout": 5.0, **kwargs}
    return Transport(f"{peer.url}/api/v1", "secret-token", **settings)


def test_sends_token_and_user_agent(peer):
    peer.then(Reply(200, {"status": "ok"}))
    assert transport(peer).get("/health") == {"status": "ok"}
    headers = {k.lower(): v for k, v in peer.seen[0].headers.items()}
    assert headers["authorization"] == "Bearer secret-token"
    assert headers["user-agent"].startswith("edgefarm-python/")
    assert peer.seen[0].path == "/api/v1/health"


def test_get_waits_for_retry_after_then_succeeds(peer):
    peer.then(
        Reply(503, {"error": "internal", "detail": "busy"}, {"Retry-After": "1"}), Reply(200, {"ok": 1})
    )
    assert transport(peer).get("/models") == {"ok": 1}
    gap = peer.seen[1].at - peer.seen[0].at
    assert len(peer.seen) == 2 and 1.0 <= gap < 1.5  # Retry-After replaces the (much shorter) backoff


def test_get_gives_up_after_max_retries(peer):
    peer.then(*[Reply(502, "<html>bad gateway</html>")] * 3)
    with pytest.raises(ef.InternalServerError) as caught:
        transport(peer).get("/models")
    assert len(peer.seen) == 3  # the first try and two retries
    assert caught.value.status_code == 502 and caught.value.error == "internal"
    assert "bad gateway" in str(caught.value)  # a proxy's page still makes a readable message


def test_retry_after_beyond_the_cap_is_raised_not_slept(peer):
    peer.then(Reply(429, {"error": "rate_limited", "detail": "slow down"}, {"Retry-After": "3600"}))
    started = time.monotonic()
    with pytest.raises(ef.RateLimitError) as caught:
        transport(peer).get("/models")
    assert time.monotonic() - started < 1 and len(peer.seen) == 1
    assert caught.value.retry_after == 3600 and "slow down" in str(caught.value)


def test_compile_post_is_retried_on_429_and_503(peer):
    busy = {"error": "rate_limited", "detail": "too many requests"}
    peer.then(Reply(429, busy, {"Retry-After": "0"}), Reply(503, "unavailable"), Reply(201, {"id": "j_1"}))
    assert transport(peer).post("/jobs/compile", {"model_id": "m_1"}) == {"id": "j_1"}
    assert len(peer.seen) == 3 and peer.seen[2].body == peer.seen[0].body


@pytest.mark.parametrize(
    "reply", [Reply(500, {"error": "internal", "detail": "boom"}), Reply(502, "bad"), Reply(408, "timeout")]
)
def test_compile_post_is_not_retried_when_the_job_may_exist(peer, reply):
    peer.then(reply, Reply(201, {"id": "j_2"}))
    with pytest.raises(ef.APIStatusError):
        transport(peer).post("/jobs/compile", {"model_id": "m_1"})
    assert len(peer.seen) == 1


def test_dropped_connection_retries_get_but_not_compile_post(peer):
    peer.then(Reply(drop=True), Reply(200, {"items": []}))
    assert transport(peer).get("/jobs") == {"items": []}
    assert len(peer.seen) == 2

    peer.then(Reply(drop=True), Reply(201, {"id": "j_3"}))
    with pytest.raises(ef.APIConnectionError) as caught:
        transport(peer).post("/jobs/compile", {"model_id": "m_1"})
    assert len(peer.seen) == 3  # one more request: the POST was not sent again
    assert peer.url in str(caught.value)


def test_read_timeout_retries_get_but_not_compile_post(peer):
    peer.then(Reply(200, {"late": True}, delay=0.6), Reply(200, {"ok": True}))
    assert transport(peer, timeout=0.3).get("/jobs/j_1") == {"ok": True}

    peer.seen.clear()
    peer.then(Reply(201, {"id": "j_4"}, delay=0.6))
    with pytest.raises(ef.APITimeoutError):
        transport(peer, timeout=0.3).post("/jobs/compile", {"model_id": "m_1"})
    time.sleep(0.4)  # let the slow reply finish before counting
    assert len(peer.seen) == 1


def test_refused_connection_is_retried_even_for_compile_post(caplog):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = Transport(
        f"http://127.0.0.1:{port}/api/v1", "t", max_retries=2, initial_backoff=0.01, max_backoff=0.02
    )
    with caplog.at_level(logging.INFO, logger="edgefarm"), pytest.raises(ef.APIConnectionError) as caught:
        dead.post("/jobs/compile", {"model_id": "m_1"})
    assert (
        len([r for r in caplog.records if "retrying" in r.message]) == 2
    )  # nothing was sent: safe to repeat
    assert f"127.0.0.1:{port}" in str(caught.value) and "edgefarm configure" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "bad_request", ef.BadRequestError),
        (401, "unauthorized", ef.AuthenticationError),
        (403, "forbidden", ef.PermissionDeniedError),
        (404, "not_found", ef.NotFoundError),
        (409, "conflict", ef.ConflictError),
        (413, "payload_too_large", ef.PayloadTooLargeError),
        (422, "validation_error", ef.UnprocessableEntityError),
    ],
)
def test_client_errors_map_to_classes_and_are_not_retried(peer, status, code, cls):
    peer.then(Reply(status, {"error": code, "detail": f"the cause and the fix for {status}"}))
    with pytest.raises(cls) as caught:
        transport(peer).get("/models/m_x")
    error = caught.value
    assert isinstance(error, ef.APIStatusError) and isinstance(error, ef.EdgeFarmError)
    assert (error.status_code, error.error, error.detail) == (
        status,
        code,
        f"the cause and the fix for {status}",
    )
    assert str(error) == f"the cause and the fix for {status} (HTTP {status} {code})"
    assert len(peer.seen) == 1


def test_fastapi_style_detail_list_still_reads(peer):
    peer.then(Reply(422, {"detail": [{"loc": ["body", "model_id"], "msg": "Field required"}]}))
    with pytest.raises(ef.UnprocessableEntityError) as caught:
        transport(peer).post("/jobs/compile", {})
    assert caught.value.error == "validation_error" and "Field required" in caught.value.detail


def test_upload_streams_the_file_and_resends_it_whole_after_503(peer, tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * 12_000)  # ~3 MiB: several chunks
    peer.then(Reply(503, "busy", {"Retry-After": "0"}), Reply(201, {"id": "m_1"}))
    calls: list[tuple[int, int | None]] = []
    with path.open("rb") as file:
        body = transport(peer).upload(
            "/models",
            filename="big.onnx",
            file=file,
            fields={"name": "big", "x": None},
            progress=lambda done, total: calls.append((done, total)),
        )
    assert body == {"id": "m_1"} and len(peer.seen) == 2
    size = path.stat().st_size
    for seen in peer.seen:  # each attempt carried the whole file, framed as multipart
        assert (
            seen.body.count(path.read_bytes()) == 1
            and b'name="name"' in seen.body
            and b'name="x"' not in seen.body
        )
    assert calls[-1] == (size, size) and len(calls) > 4
    assert any(
        later[0] < earlier[0] for earlier, later in itertools.pairwise(calls)
    )  # progress restarted on retry


def test_download_streams_to_file_and_leaves_nothing_on_error(peer, tmp_path):
    payload = b"\x00tflite" * 100_000
    peer.then(Reply(200, payload), Reply(404, NOT_FOUND))
    out = tmp_path / "out"
    out.mkdir()
    calls: list[tuple[int, int | None]] = []
    dest = transport(peer).download(
        "/models/m_1/download", out / "m.tflite", progress=lambda *a: calls.append(a)
    )
    assert dest.read_bytes() == payload and calls[-1] == (len(payload), len(payload))
    with pytest.raises(ef.NotFoundError):
        transport(peer).download("/models/m_x/download", out / "missing.tflite")
    assert sorted(p.name for p in out.iterdir()) == ["m.tflite"]  # no partial file left behind


def test_delete_is_not_repeated_after_an_answer(peer):
    peer.then(Reply(503, "busy", {"Retry-After": "0"}), Reply(204))
    transport(peer).delete("/tokens/t_1")  # 503 means "not done": safe to repeat
    peer.then(Reply(500, "boom"), Reply(204))
    with pytest.raises(ef.InternalServerError):
        transport(peer).delete("/tokens/t_2")
    assert len(peer.seen) == 3


def test_client_uses_the_same_policy(peer):
    peer.then(Reply(503, "busy", {"Retry-After": "0"}), Reply(200, {"status": "ok", "version": "0.1.0"}))
    with ef.Client(api_url=peer.url, api_token="t") as client:
        assert client.health()["status"] == "ok"
        peer.then(Reply(404, NOT_FOUND))
        with pytest.raises(ef.NotFoundError, match="does not exist"):
            client.models.get("m_x")
    assert peer.seen[-1].path == "/api/v1/models/m_x"


def test_ids_cannot_escape_their_path_segment(peer):
    peer.then(Reply(404, NOT_FOUND))
    with ef.Client(api_url=peer.url, api_token="t") as client, pytest.raises(ef.NotFoundError):
        client.jobs.get("../tokens")
    assert peer.seen[0].path == "/api/v1/jobs/..%2Ftokens"


def test_parse_retry_after():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= parse_retry_after(later) <= 30
    assert parse_retry_after(format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)) == 0.0


def test_timeout_is_explicit(peer):
    client = ef.Client(api_url=peer.url, api_token="t", timeout=7.0)
    assert client._transport._http.timeout == httpx.Timeout(7.0)
    assert ef.Client(api_url=peer.url, api_token="t")._transport._http.timeout.connect == 10.0
