"""The model registry through a real gateway process, on every backend.

Versions are registered as the delivery pipeline does it, by calling the service function against the gateway's
own database; everything else (promote, rollback, fetch) goes over HTTP as users and devices do it.
"""

from __future__ import annotations

import copy
import secrets
import threading

import httpx
import pytest

from edgefarm_gateway.db import Database
from edgefarm_gateway.errors import BadRequest
from edgefarm_gateway.registry import service as registry
from edgefarm_gateway.settings import Settings
from edgefarm_gateway.tokens.service import Principal
from tests.gateway.test_api import conv_onnx, upload

PIPELINE = Principal("tpipeline000", "pipeline-bot", "user")


@pytest.fixture
def api(gateway):
    with httpx.Client(base_url=f"{gateway.url}/api/v1", timeout=30,
                      headers={"Authorization": f"Bearer {gateway.admin_token}"}) as client:
        yield client


@pytest.fixture
def db(gateway):
    """The gateway's database, opened from the test process (as the pipeline driver inside the gateway uses it)."""
    database = Database(Settings(data_dir=gateway.data_dir,
                                 database_url=gateway.farm.env.get("EDGEFARM_DATABASE_URL", "")))
    yield database
    database.engine.dispose()


def token(api, role: str, name: str | None = None) -> httpx.Client:
    created = api.post("/tokens", json={"name": name or f"{role}-{secrets.token_hex(3)}", "role": role})
    assert created.status_code == 201, created.text
    return httpx.Client(base_url=str(api.base_url), timeout=30,
                        headers={"Authorization": f"Bearer {created.json()['token']}"})


def model(api) -> dict:
    """A freshly uploaded model (new bytes every call)."""
    created = upload(api, conv_onnx(seed=secrets.randbits(32)), "target")
    assert created.status_code == 201, created.text
    return created.json()


def register(db, name: str, source: dict, targets: dict[str, dict], evidence: dict | None = None,
             pipeline_id: str | None = None) -> int:
    with db.session() as session:
        version = registry.register_version(
            session, name=name, source_model_id=source["id"],
            targets=[{"device": device, "model_id": m["id"], "compile_job_id": "jcompile",
                      "profile_job_id": f"jprofile-{i}", "inference_job_id": f"jinfer-{i}"}
                     for i, (device, m) in enumerate(targets.items())],
            evidence=evidence or {}, pipeline_id=pipeline_id, submitted_by=PIPELINE)
        return version.number


def released(api, db, name: str, versions: int) -> tuple[dict, list[dict]]:
    """A registered model with `versions` versions, each with its own Host CPU target."""
    source = model(api)
    targets = [model(api) for _ in range(versions)]
    for target in targets:
        register(db, name, source, {"Host CPU": target})
    return source, targets


def fetch(client: httpx.Client, name: str, channel: str = "production", **params) -> httpx.Response:
    headers = params.pop("headers", {})
    return client.get(f"/registry/models/{name}/channels/{channel}/artifact", params=params, headers=headers)


def content_of(api, m: dict) -> bytes:
    return api.get(f"/models/{m['id']}/download").content


def name() -> str:
    return f"seg-{secrets.token_hex(4)}"


def test_versions_count_from_one_and_keep_their_targets_and_evidence(gateway, api, db):
    seg = name()
    source, first, second, other = model(api), model(api), model(api), model(api)
    evidence = {"gates": [{"gate": "max_latency_ms", "device": "Host CPU", "measured": 3.2, "threshold": 10,
                           "passed": True}], "metrics": {"Host CPU": {"iou": 0.97}}}
    assert register(db, seg, source, {"Host CPU": first}, evidence, pipeline_id="p123") == 1
    assert register(db, seg, source, {"Host CPU": second, "Pixel 8": other}) == 2
    assert register(db, seg, source, {"Host CPU": first}) == 3
    assert register(db, name(), source, {"Host CPU": first}) == 1  # numbers count per model

    detail = api.get(f"/registry/models/{seg}").json()
    assert detail["latest_version"] == 3 and detail["channels"] == {} and detail["events"] == []
    assert [v["number"] for v in detail["versions"]] == [3, 2, 1]
    assert detail["versions"][1]["devices"] == ["Host CPU", "Pixel 8"]
    assert detail["versions"][2]["submitted_by"] == "pipeline-bot" and detail["versions"][2]["pipeline_id"] == "p123"

    v1 = api.get(f"/registry/models/{seg}/versions/1").json()
    assert v1["evidence"] == evidence and v1["model"] == seg and v1["source_model_id"] == source["id"]
    assert v1["targets"] == [{"device": "Host CPU", "model_id": first["id"], "sha256": first["sha256"],
                              "size": first["size"], "format": "onnx", "compile_job_id": "jcompile",
                              "profile_job_id": "jprofile-0", "inference_job_id": "jinfer-0"}]
    missing = api.get(f"/registry/models/{seg}/versions/9")
    assert missing.status_code == 404 and "its versions are 1 to 3" in missing.json()["detail"]
    assert api.get("/registry/models/nope-nope").status_code == 404

    listed = api.get("/registry/models", params={"name": seg}).json()
    assert listed["total"] == 1 and listed["items"][0]["latest_version"] == 3


@pytest.mark.parametrize("change, message", [
    ({"name": "no spaces"}, "is not a registry model name"),
    ({"source_model_id": "mnope"}, "source_model_id: no model 'mnope'"),
    ({"targets": []}, "at least one target"),
    ({"targets": [{"device": "Host CPU", "model_id": "mnope"}]}, "(Host CPU): no model 'mnope'"),
    ({"targets": [{"model_id": "SOURCE"}]}, "names no device"),
    ({"targets": [{"device": "A", "model_id": "SOURCE"}, {"device": "A", "model_id": "SOURCE"}]}, "twice"),
    ({"evidence": {"when": object()}}, "evidence must be JSON"),
])
def test_register_version_refuses_what_a_device_could_not_fetch(gateway, api, db, change, message):
    source = model(api)
    arguments = {"name": name(), "source_model_id": source["id"], "evidence": {}, "pipeline_id": None,
                 "targets": [{"device": "Host CPU", "model_id": source["id"]}], **copy.deepcopy(change)}
    for target in arguments["targets"]:
        if target.get("model_id") == "SOURCE":
            target["model_id"] = source["id"]
    with db.session() as session, pytest.raises(BadRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        registry.register_version(session, submitted_by=PIPELINE, **arguments)


def test_concurrent_registrations_get_distinct_numbers(gateway, api, db):
    seg, source, target = name(), model(api), model(api)
    numbers: list[int] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            numbers.append(register(db, seg, source, {"Host CPU": target}))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]


def test_promote_and_rollback_change_what_devices_fetch(gateway, api, db):
    seg = name()
    _, (t1, t2, t3) = released(api, db, seg, 3)
    manager = token(api, "user", name="release-manager")

    empty = fetch(api, seg)
    assert empty.status_code == 404
    assert empty.json()["detail"] == (f"nothing promoted to production yet: "
                                      f"edgefarm registry promote {seg} VERSION --channel production")

    for number in (1, 2, 3):
        promoted = manager.post(f"/registry/models/{seg}/channels/production/promote",
                                json={"version": number, "reason": f"ship v{number}"})
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["version"] == number
        assert promoted.json()["event"]["from_version"] == (number - 1 or None)
    got = fetch(api, seg)
    assert got.status_code == 200 and got.content == content_of(api, t3)
    assert got.headers["x-edgefarm-version"] == "3" and got.headers["x-edgefarm-model"] == seg
    assert got.headers["x-edgefarm-channel"] == "production"
    assert got.headers["etag"] == f'"{t3["sha256"]}"'
    assert f'{seg}-v3.onnx' in got.headers["content-disposition"]

    unchanged = fetch(api, seg, headers={"If-None-Match": got.headers["etag"]})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == got.headers["etag"] and unchanged.headers["x-edgefarm-version"] == "3"

    back = manager.post(f"/registry/models/{seg}/channels/production/rollback", json={"reason": "iou regression"})
    assert back.status_code == 200 and back.json()["version"] == 2
    changed = fetch(api, seg, headers={"If-None-Match": got.headers["etag"]})  # the device's copy is now stale
    assert changed.status_code == 200 and changed.content == content_of(api, t2)
    assert changed.headers["x-edgefarm-version"] == "2" and changed.headers["etag"] == f'"{t2["sha256"]}"'

    assert manager.post(f"/registry/models/{seg}/channels/production/rollback",
                        json={"reason": "still wrong"}).json()["version"] == 1
    assert fetch(api, seg).content == content_of(api, t1)
    third = manager.post(f"/registry/models/{seg}/channels/production/rollback", json={"reason": "again"})
    assert third.status_code == 409
    assert "version 1 was the first version promoted to production" in third.json()["detail"]
    assert "edgefarm registry promote" in third.json()["detail"]

    # A fixed version is fetched the same way, whatever the channel serves.
    fixed = api.get(f"/registry/models/{seg}/versions/3/artifact")
    assert fixed.content == content_of(api, t3) and fixed.headers["x-edgefarm-version"] == "3"
    assert "x-edgefarm-channel" not in fixed.headers

    detail = api.get(f"/registry/models/{seg}").json()
    assert detail["channels"] == {"production": 1}
    events = [(e["action"], e["from_version"], e["to_version"], e["reason"], e["by"]) for e in detail["events"]]
    assert events == [
        ("rollback", 2, 1, "still wrong", "release-manager"),
        ("rollback", 3, 2, "iou regression", "release-manager"),
        ("promote", 2, 3, "ship v3", "release-manager"),
        ("promote", 1, 2, "ship v2", "release-manager"),
        ("promote", None, 1, "ship v1", "release-manager"),
    ]
    assert api.get(f"/registry/models/{seg}/versions/1").json()["channels"] == ["production"]
    listed = api.get("/registry/models", params={"name": seg}).json()["items"][0]
    assert listed["channels"] == {"production": 1} and listed["latest_version"] == 3


def test_rollback_goes_back_to_what_preceded_the_current_promotion(gateway, api, db):
    seg = name()
    released(api, db, seg, 3)
    promote = lambda n: api.post(f"/registry/models/{seg}/channels/staging/promote", json={"version": n})  # noqa: E731
    for number in (1, 3, 2, 3):
        assert promote(number).status_code == 200
    # staging: 1 → 3 → 2 → 3; the current 3 was last promoted from 2.
    rolled = api.post(f"/registry/models/{seg}/channels/staging/rollback", json={"reason": "r"}).json()
    assert rolled["version"] == 2
    rolled = api.post(f"/registry/models/{seg}/channels/staging/rollback", json={"reason": "r"}).json()
    assert rolled["version"] == 3  # 2 was promoted from 3
    # Channels are independent.
    assert api.post(f"/registry/models/{seg}/channels/production/promote", json={"version": 1}).status_code == 200
    assert api.get(f"/registry/models/{seg}").json()["channels"] == {"production": 1, "staging": 3}


def test_promote_and_rollback_errors_name_the_cause(gateway, api, db):
    seg = name()
    released(api, db, seg, 2)
    url = f"/registry/models/{seg}/channels"
    unknown = api.post(f"{url}/production/promote", json={"version": 7})
    assert unknown.status_code == 404 and unknown.json()["detail"] == f"{seg} has no version 7; its versions are 1 to 2"
    bad = api.post(f"{url}/Prod!/promote", json={"version": 1})
    assert bad.status_code == 400 and "is not a channel name" in bad.json()["detail"]
    assert api.post(f"{url}/production/promote", json={"version": 0}).status_code == 422
    assert api.post(f"/registry/models/nope-{seg}/channels/production/promote", json={"version": 1}
                    ).status_code == 404
    nothing = api.post(f"{url}/production/rollback", json={"reason": "why"})
    assert nothing.status_code == 409 and "nothing was promoted to production" in nothing.json()["detail"]

    assert api.post(f"{url}/production/promote", json={"version": 2}).status_code == 200
    again = api.post(f"{url}/production/promote", json={"version": 2})
    assert again.status_code == 409 and "already current on production" in again.json()["detail"]
    no_reason = api.post(f"{url}/production/rollback", json={"reason": "  "})
    assert no_reason.status_code == 400 and "needs a reason" in no_reason.json()["detail"]
    assert api.post(f"{url}/production/rollback", json={}).status_code == 422
    first = api.post(f"{url}/production/rollback", json={"reason": "bad"})
    assert first.status_code == 409 and "no earlier version" in first.json()["detail"]
    assert len(api.get(f"/registry/models/{seg}").json()["events"]) == 1  # refusals change nothing


def test_device_selection(gateway, api, db):
    seg, source, cpu, pixel = name(), model(api), model(api), model(api)
    register(db, seg, source, {"Host CPU": cpu, "Pixel 8": pixel})
    register(db, seg, source, {"Host CPU": cpu})
    api.post(f"/registry/models/{seg}/channels/production/promote", json={"version": 1})

    either = fetch(api, seg)
    assert either.status_code == 400
    assert "has targets for 2 devices (Host CPU, Pixel 8): say which with ?device=" in either.json()["detail"]
    wrong = fetch(api, seg, device="Jetson")
    assert wrong.status_code == 404
    assert wrong.json()["detail"] == (f"version 1 of {seg} has no target for device 'Jetson'; it has targets for: "
                                      "Host CPU, Pixel 8")
    assert fetch(api, seg, device="Pixel 8").content == content_of(api, pixel)
    assert fetch(api, seg, device="Host CPU").content == content_of(api, cpu)
    only = api.get(f"/registry/models/{seg}/versions/2/artifact")  # one target: no device needed
    assert only.status_code == 200 and only.content == content_of(api, cpu)
    assert api.get(f"/registry/models/{seg}/versions/2/artifact", params={"device": "Pixel 8"}).status_code == 404


def test_fleet_tokens_fetch_releases_and_nothing_else(gateway, api, db):
    seg = name()
    _, (t1,) = released(api, db, seg, 1)
    api.post(f"/registry/models/{seg}/channels/production/promote", json={"version": 1})
    fleet = token(api, "fleet")

    assert fetch(fleet, seg).content == content_of(api, t1)
    assert fleet.get(f"/registry/models/{seg}/versions/1/artifact").status_code == 200
    assert fetch(token(api, "user"), seg).status_code == 200
    refused = [
        fleet.post(f"/registry/models/{seg}/channels/production/promote", json={"version": 1}),
        fleet.post(f"/registry/models/{seg}/channels/production/rollback", json={"reason": "x"}),
        fleet.get("/registry/models"),
        fleet.get(f"/registry/models/{seg}"),
        fleet.get(f"/registry/models/{seg}/versions/1"),
        fleet.get("/models"),
        fleet.get(f"/models/{t1['id']}/download"),
        fleet.get("/jobs"),
        fleet.post("/jobs/compile", json={"model_id": t1["id"]}),
        fleet.get("/datasets"),
        fleet.get("/devices"),
        fleet.get("/tokens"),
        fleet.post("/agent/register", json={"agent_name": "x", "devices": []}),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused), [r.request.url for r in refused
                                                                      if r.status_code != 403]
    assert all(r.json()["error"] == "forbidden" for r in refused)
    agent = token(api, "agent")
    assert fetch(agent, seg).status_code == 403 and "fleet" in fetch(agent, seg).json()["detail"]
    assert httpx.get(f"{gateway.url}/api/v1/registry/models/{seg}/channels/production/artifact").status_code == 401


def test_the_models_page_lists_releases(gateway, api, db):
    seg = name()
    source, target = model(api), model(api)
    register(db, seg, source, {"Host CPU": target}, pipeline_id="pdash1")
    register(db, seg, source, {"Host CPU": model(api), "Pixel 8": target})
    api.post(f"/registry/models/{seg}/channels/production/promote", json={"version": 1, "reason": "first <ship>"})
    api.post(f"/registry/models/{seg}/channels/staging/promote", json={"version": 2})
    fleet_secret = api.post("/tokens", json={"name": "a board", "role": "fleet"}).json()["token"]
    with httpx.Client(base_url=gateway.url, timeout=30, follow_redirects=True) as browser:
        refused = browser.post("/login", data={"token": fleet_secret})
        assert refused.status_code == 401 and "cannot open the dashboard" in refused.text
        assert browser.post("/login", data={"token": gateway.admin_token, "next": "/models"}).status_code == 200
        page = browser.get("/models").text
    section = page[page.index(f'data-registered-model="{seg}"'):]
    section = section[:section.index("</section>")]
    assert "production → v1" in section and "staging → v2" in section
    assert "pdash1" in section and "pipeline-bot" in section and "Host CPU, Pixel 8" in section
    assert "first &lt;ship&gt;" in section  # reasons are escaped
