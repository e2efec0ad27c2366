"""Server administration: `python -m edgefarm_gateway migrate | token | serve`.

Runs on the server with direct database access; `edgefarm up` uses it to prepare a local farm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgefarm_gateway.settings import Settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="EdgeFarm server administration.")


@cli.command()
def migrate() -> None:
    """Create or upgrade the database schema to the latest version."""
    from edgefarm_gateway.migrate import upgrade

    upgrade(Settings())


@cli.command()
def token(name: Annotated[str, typer.Option(help="who or what the token is for")],
          role: Annotated[str, typer.Option(help="admin, user, agent or fleet (devices fetching releases)")] = "user",
          keep: Annotated[Path | None, typer.Option(help="a file (0600) to keep the secret in: its token is "
                                                        "printed again while it is valid, else a new one")] = None,
          ) -> None:
    """Create an API token and print its secret (shown once)."""
    from edgefarm_gateway.db import Database
    from edgefarm_gateway.tokens.service import ROLES, authenticate, create

    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}")
    db = Database(Settings())
    with db.session() as session:
        kept = keep.read_text().strip() if keep is not None and keep.exists() else ""
        principal = authenticate(session, kept) if kept else None
        if principal is not None and principal.role == role:
            typer.echo(kept)
            return
        created = create(session, name, role)
    if keep is not None:  # a revoked or foreign secret is replaced
        keep.touch(mode=0o600)
        keep.chmod(0o600)
        keep.write_text(created.token + "\n")
    typer.echo(created.token)


@cli.command()
def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the gateway (uvicorn)."""
    import uvicorn

    uvicorn.run("edgefarm_gateway.app:create_app", factory=True, host=host, port=port, log_level="info")


@cli.command()
def openapi() -> None:
    """Print the OpenAPI document (committed as openapi/openapi.json)."""
    import json
    import tempfile

    from edgefarm_gateway.app import create_app

    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(data_dir=data_dir), background=False)
        typer.echo(json.dumps(app.openapi(), indent=2, sort_keys=True))


if __name__ == "__main__":
    cli()
