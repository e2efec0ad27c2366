"""Schema migrations (Alembic, kept in the repository's migrations/ folder)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config

from edgefarm_gateway.settings import Settings


def migrations_dir() -> Path:
    configured = os.environ.get("EDGEFARM_MIGRATIONS_DIR")
    path = Path(configured) if configured else Path(__file__).resolve().parents[2] / "migrations"
    if not (path / "env.py").is_file():
        raise RuntimeError(f"no Alembic migrations at {path}: run from an EdgeFarm checkout or set "
                           "EDGEFARM_MIGRATIONS_DIR to its migrations/ folder")
    return path


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(settings: Settings) -> None:
    settings.data_path.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings.sqlalchemy_url), "head")
