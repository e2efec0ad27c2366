"""The live gateway fuzzed from its own OpenAPI document by schemathesis, with each role's token: no server error,
and every answer (status code, body, content type, headers) is one the document declares.

Bounded: 5 examples per operation and phase, a fixed seed (a failure reproduces), about 40 s a role. Left out, and
cleaned up:
- revoking tokens (DELETE /tokens/{id}): the farm is shared with the other tests, whose tokens the stateful phase
  would find and revoke; tests/gateway/test_tokens.py and test_api.py cover it.
- the jobs and pipelines it submitted are cancelled afterwards: they would otherwise wait for the devices and
  workers of the tests after it.
- the "schema-valid request rejected" check: the API refuses with a 400 naming the cause what a schema cannot
  call wrong (an id that names nothing of that kind, a tensor of more than 2^31 elements, a registry name).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.gateway.test_api import api  # noqa: F401  (a fixture)

CHECKS = ("not_a_server_error", "response_schema_conformance", "status_code_conformance",
          "content_type_conformance", "response_headers_conformance")


@pytest.mark.parametrize("role", ["admin", "user", "agent", "fleet"])
def test_every_role_gets_documented_answers_and_no_server_error(gateway, api, role, tmp_path):  # noqa: F811
    token = gateway.admin_token if role == "admin" else api.post(
        "/tokens", json={"name": f"schema fuzz {role}", "role": role}).json()["token"]
    started = datetime.now(UTC)
    try:
        _fuzz(gateway, token, tmp_path)
    finally:
        _cancel_what_it_left_running(api, started)


def _fuzz(gateway, token: str, tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    run = subprocess.run(
        [str(schemathesis), "run", f"{gateway.url}/openapi.json", "--header", f"Authorization: Bearer {token}",
         "--checks", ",".join(CHECKS), "--max-examples", "5", "--seed", "0", "--request-timeout", "60",
         "--exclude-operation-id", "tokens-revoke_token", "--no-color"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path)  # its cache folder goes there
    assert run.returncode == 0, run.stdout[-30000:] + run.stderr[-5000:]
    assert "generated" in run.stdout and " passed" in run.stdout, run.stdout[-5000:]


def _cancel_what_it_left_running(api, since: datetime) -> None:  # noqa: F811
    """Jobs and pipelines the fuzzer submitted wait for devices and workers the later tests share (a profile job
    for "any device" would be leased by the next test's device): cancelled here."""
    for kind, running in (("jobs", ("CREATED", "OPTIMIZING_MODEL", "PROVISIONING_DEVICE", "MEASURING_PERFORMANCE",
                                     "RUNNING_INFERENCE")), ("pipelines", ("RUNNING",))):
        offset = 0
        while True:
            page = api.get(f"/{kind}", params={"offset": offset, "limit": 200}).json()["items"]
            recent = [item for item in page if datetime.fromisoformat(item["created_at"]) >= since]
            for item in recent:
                if item["state"] in running:
                    api.post(f"/{kind}/{item['id']}/cancel")
            if len(recent) < len(page) or not page:
                break
            offset += len(page)
