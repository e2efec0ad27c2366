"""client.registry and `edgefarm registry` against a real gateway process (fixtures from tests/conftest.py).

Versions are registered through the gateway's service function, as the delivery pipeline does.
"""

from __future__ import annotations

import secrets

import edgefarm as ef
import pytest
from edgefarm.cli import app
from typer.testing import CliRunner

from tests.sdk.test_sdk_gateway import conv_model

try:
    from edgefarm_gateway.db import Database
    from edgefarm_gateway.registry import service as registry
    from edgefarm_gateway.settings import Settings
    from edgefarm_gateway.tokens.service import Principal
except ImportError:  # an SDK-only install
    pytest.skip("the gateway is not installed here", allow_module_level=True)

GATES = [
    {"gate": "max_metric_drop", "device": "Host CPU", "measured": 0.012, "threshold": 0.02, "passed": True},
    {"gate": "max_latency_ms", "device": "Host CPU", "measured": 4.25, "threshold": 10.0, "passed": True},
]


@pytest.fixture
def release(gateway, client):
    """A registered model with two versions (distinct Host CPU targets), v1 promoted to production."""
    database = Database(Settings(data_dir=gateway.data_dir,
                                 database_url=gateway.farm.env.get("EDGEFARM_DATABASE_URL", "")))
    name = f"seg-{secrets.token_hex(4)}"
    source = client.models.upload(conv_model())
    targets = [client.models.upload(conv_model()) for _ in range(2)]
    for target in targets:
        with database.session() as session:
            registry.register_version(
                session, name=name, source_model_id=source.id,
                targets=[{"device": "Host CPU", "model_id": target.id, "compile_job_id": "jc"}],
                evidence={"gates": GATES, "devices": [{"device": "Host CPU", "metrics": {"iou": 0.981, "psnr": 41.5}}]},
                pipeline_id="pabc", submitted_by=Principal("tpipe", "pipeline-bot", "user"))
    database.engine.dispose()
    client.registry.promote(name, 1, "production", reason="first release")
    return name, targets


def test_download_with_etag_fetches_only_what_changed(client, release, tmp_path):
    name, (t1, t2) = release
    dest = tmp_path / "model.onnx"
    first = client.registry.download(name, dest, channel="production", device="Host CPU")
    assert first.changed and first.path == dest and first.version == 1 and first.channel == "production"
    assert dest.read_bytes() == t1.download(tmp_path / "t1.onnx").read_bytes()
    assert first.etag == f'"{t1.sha256}"'

    dest.write_bytes(b"the device's copy")  # a 304 must not touch the file
    same = client.registry.download(name, dest, channel="production", etag=first.etag)
    assert not same.changed and same.version == 1 and dest.read_bytes() == b"the device's copy"
    assert not client.registry.download(name, dest, etag=t1.sha256).changed  # a bare hash works too

    client.registry.promote(name, 2, reason="better iou")
    newer = client.registry.download(name, dest, etag=first.etag)
    assert newer.changed and newer.version == 2 and newer.etag == f'"{t2.sha256}"'
    assert dest.read_bytes() == t2.download(tmp_path / "t2.onnx").read_bytes()

    into_dir = client.registry.download(name, tmp_path, version=1)
    assert into_dir.path == tmp_path / f"{name}-v1.onnx" and into_dir.channel is None
    assert not list(tmp_path.glob(".*.part"))


def test_registry_objects_read_well(client, release):
    name, _ = release
    model = client.registry.get(name)
    assert repr(model) == f"RegisteredModel(name={name!r}, latest_version=2, channels={{'production': 1}})"
    assert [v.number for v in model.versions] == [2, 1]
    assert [(e.action, e.to_version, e.reason) for e in model.events] == [("promote", 1, "first release")]
    assert model in client.registry.list(name=name)
    version = model.version()
    assert repr(version) == f"ModelVersion(model={name!r}, number=2, devices=['Host CPU'], channels=[])"
    assert version.gates == GATES and version.pipeline_id == "pabc" and version.submitted_by == "pipeline-bot"
    moved = version.promote("staging")
    assert moved.version == 2 and moved.name == "staging"
    with pytest.raises(ef.ConflictError, match="already current on staging"):
        client.registry.promote(name, 2, "staging")
    with pytest.raises(ValueError, match="needs a reason"):
        client.registry.rollback(name, "staging", reason="")
    with pytest.raises(ef.ConflictError, match="no earlier version"):
        model.rollback("staging", reason="oops")
    with pytest.raises(ef.NotFoundError, match="nothing promoted to canary yet"):
        client.registry.download(name, "x.onnx", channel="canary")
    with pytest.raises(ValueError, match="not both"):
        client.registry.download(name, "x.onnx", channel="production", version=1)


def test_module_functions_use_the_configured_client(gateway, release, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEFARM_API_URL", gateway.url)
    monkeypatch.setenv("EDGEFARM_API_TOKEN", gateway.admin_token)
    name, _ = release
    assert name in [m.name for m in ef.get_registered_models(name=name)]
    assert ef.get_registered_model(name).channels == {"production": 1}
    assert ef.promote_model_version(name, 2, reason="go").version == 2
    assert ef.rollback_model(name, reason="no go").version == 1
    assert ef.download_release(name, tmp_path / "m.onnx").version == 1
    assert ef.get_model_version(name, 2).number == 2


def test_cli_registry_round_trip(gateway, release, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEFARM_API_URL", gateway.url)
    monkeypatch.setenv("EDGEFARM_API_TOKEN", gateway.admin_token)
    name, _ = release
    runner = CliRunner()

    listed = runner.invoke(app, ["registry", "list", "--name", name])
    assert listed.exit_code == 0, listed.output
    assert name in listed.stdout and "production: v1" in listed.stdout

    promoted = runner.invoke(app, ["registry", "promote", name, "2", "--channel", "production", "--reason", "ok"])
    assert promoted.exit_code == 0, promoted.output
    assert promoted.stdout.strip() == f"{name} production: v1 → v2"

    shown = runner.invoke(app, ["registry", "show", name], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "channel history" in shown.stdout and "first release" in shown.stdout and "pipeline-bot" in shown.stdout
    version = runner.invoke(app, ["registry", "show", name, "--version", "1"], terminal_width=200)
    assert version.exit_code == 0, version.output
    assert "max_latency_ms" in version.stdout and "4.25" in version.stdout and "pass" in version.stdout
    assert "IOU" in version.stdout and "0.981" in version.stdout

    out = tmp_path / "release.onnx"
    downloaded = runner.invoke(app, ["registry", "download", name, "--device", "Host CPU", "-o", str(out)])
    assert downloaded.exit_code == 0, downloaded.output
    assert downloaded.stdout.strip() == str(out) and out.is_file()
    etag = downloaded.stderr.split("ETag ")[1].strip()
    again = runner.invoke(app, ["registry", "download", name, "-o", str(out), "--etag", etag])
    assert again.exit_code == 0 and "unchanged: v2" in again.stderr

    no_reason = runner.invoke(app, ["registry", "rollback", name])
    assert no_reason.exit_code == 2  # --reason is required
    rolled = runner.invoke(app, ["registry", "rollback", name, "--reason", "regression"])
    assert rolled.exit_code == 0 and rolled.stdout.strip() == f"{name} production: v2 → v1 (rolled back)"
    refused = runner.invoke(app, ["registry", "rollback", name, "--reason", "again"])
    assert refused.exit_code == 1 and refused.output.startswith("error: ") and "no earlier version" in refused.output
