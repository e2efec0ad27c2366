"""Where the SDK finds the farm and its token: arguments, then environment, then `~/.edgefarm/client.ini`.

The ini file has qai_hub's shape (section `[api]`, keys `api_url` and `api_token`) so people recognise it,
and `edgefarm configure` writes it readable by its owner only, since it holds a secret.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

from edgefarm.errors import ConfigurationError

# Where `edgefarm up` listens on one machine, so a local farm needs no configuration beyond the token.
DEFAULT_API_URL = "http://127.0.0.1:8000"
ENV_API_URL = "EDGEFARM_API_URL"
ENV_API_TOKEN = "EDGEFARM_API_TOKEN"
ENV_CONFIG = "EDGEFARM_CONFIG"
SECTION = "api"


@dataclass(frozen=True)
class Config:
    api_url: str
    api_token: str


def config_path() -> Path:
    """`$EDGEFARM_CONFIG` when set, else `~/.edgefarm/client.ini`."""
    override = os.environ.get(ENV_CONFIG)
    return Path(override).expanduser() if override else Path.home() / ".edgefarm" / "client.ini"


def read_config_file(path: Path | None = None) -> dict[str, str]:
    """The `[api]` keys of the ini file; empty when the file does not exist."""
    path = path or config_path()
    parser = configparser.ConfigParser()
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        return {}
    except configparser.Error as exc:
        raise ConfigurationError(
            f"cannot read {path}: {exc}; fix it or run `edgefarm configure` again"
        ) from None
    return dict(parser[SECTION]) if parser.has_section(SECTION) else {}


def load_config(api_url: str | None = None, api_token: str | None = None) -> Config:
    """Each setting independently: explicit argument, then environment, then the ini file."""
    file_values: dict[str, str] | None = None

    def lookup(explicit: str | None, env: str, key: str) -> str | None:
        nonlocal file_values
        if explicit:
            return explicit
        if os.environ.get(env):
            return os.environ[env]
        if file_values is None:
            file_values = read_config_file()
        return file_values.get(key) or None

    token = lookup(api_token, ENV_API_TOKEN, "api_token")
    if not token:
        raise ConfigurationError(
            "no API token found: run `edgefarm configure --api_token <token>` "
            f"(writes {config_path()}), set {ENV_API_TOKEN}, or pass api_token= to ef.Client"
        )
    url = lookup(api_url, ENV_API_URL, "api_url") or DEFAULT_API_URL
    return Config(api_url=normalize_api_url(url), api_token=token)


def normalize_api_url(url: str) -> str:
    """The farm's root URL; people paste either the root or the `/api/v1` address, both work."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"api_url must start with http:// or https://; got {url!r}")
    return url.removesuffix("/api/v1")


def write_config(api_url: str | None = None, api_token: str | None = None, path: Path | None = None) -> Path:
    """Update the ini file with the values given, keeping the others; the file is made mode 0600."""
    path = path or config_path()
    parser = configparser.ConfigParser()
    parser.read(path, encoding="utf-8")
    if not parser.has_section(SECTION):
        parser.add_section(SECTION)
    if api_url:
        parser[SECTION]["api_url"] = normalize_api_url(api_url)
    if api_token:
        parser[SECTION]["api_token"] = api_token
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Create with 0600 up front so the token is never readable by others, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        parser.write(handle)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through os.open
    return path
