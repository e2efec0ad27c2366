"""Where the SDK finds the farm: arguments, then environment, then the ini file (like qai_hub's client.ini)."""

from __future__ import annotations

import stat

import edgefarm as ef
import pytest
from edgefarm.cli import app
from edgefarm.config import DEFAULT_API_URL, config_path, load_config, read_config_file, write_config
from typer.testing import CliRunner


def write_ini(path, url="http://file-farm:8000", token="file-token"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[api]\napi_url = {url}\napi_token = {token}\n")


def test_arguments_beat_environment_beat_file(isolated_config, monkeypatch):
    write_ini(isolated_config / ".edgefarm" / "client.ini")
    assert load_config() == ef.client.load_config()  # the same lookup the client uses
    assert (load_config().api_url, load_config().api_token) == ("http://file-farm:8000", "file-token")

    monkeypatch.setenv("EDGEFARM_API_TOKEN", "env-token")
    config = load_config()
    assert (config.api_url, config.api_token) == ("http://file-farm:8000", "env-token")  # each key on its own

    monkeypatch.setenv("EDGEFARM_API_URL", "http://env-farm:9000/")
    config = load_config(api_token="arg-token")
    assert (config.api_url, config.api_token) == ("http://env-farm:9000", "arg-token")
    assert load_config(api_url="http://arg-farm/api/v1").api_url == "http://arg-farm"


def test_edgefarm_config_points_at_another_file(tmp_path, monkeypatch):
    other = tmp_path / "elsewhere.ini"
    write_ini(other, token="other-token")
    monkeypatch.setenv("EDGEFARM_CONFIG", str(other))
    assert config_path() == other and load_config().api_token == "other-token"


def test_missing_token_says_how_to_configure(isolated_config):
    with pytest.raises(ef.ConfigurationError) as caught:
        ef.Client()
    message = str(caught.value)
    assert "edgefarm configure --api_token" in message and "EDGEFARM_API_TOKEN" in message
    assert str(isolated_config / ".edgefarm" / "client.ini") in message


def test_default_url_is_the_local_farm():
    assert load_config(api_token="t").api_url == DEFAULT_API_URL


def test_bad_url_and_bad_file_are_configuration_errors(isolated_config):
    with pytest.raises(ef.ConfigurationError, match="http://"):
        load_config(api_url="farm:8000", api_token="t")
    (isolated_config / ".edgefarm").mkdir()
    (isolated_config / ".edgefarm" / "client.ini").write_text("api_token = no section\n")
    with pytest.raises(ef.ConfigurationError, match="edgefarm configure"):
        load_config()


def test_write_config_is_private_and_keeps_other_keys(isolated_config):
    path = write_config(api_url="http://farm:8000", api_token="secret")
    assert path == isolated_config / ".edgefarm" / "client.ini"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    write_config(api_token="rotated")
    assert read_config_file() == {"api_url": "http://farm:8000", "api_token": "rotated"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # tightened again


def test_cli_configure_writes_the_file(isolated_config):
    result = CliRunner().invoke(
        app, ["configure", "--api_url", "http://farm:8000/api/v1", "--api_token", "tok"]
    )
    assert result.exit_code == 0, result.output
    assert read_config_file() == {"api_url": "http://farm:8000", "api_token": "tok"}
    assert load_config().api_token == "tok"


def test_cli_configure_needs_something_to_write():
    result = CliRunner().invoke(app, ["configure"])
    assert result.exit_code == 2
