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
          agent: Annotated[str | None, typer.Option(help="agent tokens: the one agent it may register "
                                                         "(default: the first that registers with it)")] = None,
          pools: Annotated[str | None, typer.Option(help="agent tokens: the device pools it may serve, "
                                                         "comma-separated (default: any)")] = None,
          keep: Annotated[Path | None, typer.Option(help="a file (0600) to keep the secret in: its token is "
                                                        "printed again while it is valid, else a new one")] = None,
          ) -> None:
    """Create an API token and print its secret (shown once)."""
    from pydantic import ValidationError

    from edgefarm.wire import TokenIn
    from edgefarm_gateway.db import Database
    from edgefarm_gateway.errors import BadRequest
    from edgefarm_gateway.tokens.service import authenticate, create

    try:
        request = TokenIn(name=name, role=role, agent=agent,
                          pools=[p.strip() for p in pools.split(",")] if pools is not None else None)
    except ValidationError as exc:
        problems = (f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise typer.BadParameter("; ".join(problems)) from None
    db = Database(Settings())
    with db.session() as session:
        kept = keep.read_text().strip() if keep is not None and keep.exists() else ""
        principal = authenticate(session, kept) if kept else None
        if principal is not None and principal.role == role:
            typer.echo(kept)
            return
        try:
            created = create(session, request)
        except BadRequest as exc:
            raise typer.BadParameter(str(exc)) from None
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
