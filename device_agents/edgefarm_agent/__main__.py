"""`python -m edgefarm_agent --server URL --token T --config agent.toml` (`edgefarm agent …` runs this).

Exit codes: 0 after SIGTERM/SIGINT (running jobs finished or failed cleanly), 1 when the gateway refuses
the agent (a wrong token, a device it rejects), 2 for a bad command line or configuration file.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from edgefarm import __version__

from edgefarm_agent.client import GatewayClient, GatewayError
from edgefarm_agent.config import ConfigError, load_config
from edgefarm_agent.loop import Agent, AgentStopped

TOKEN_ENV = "EDGEFARM_AGENT_TOKEN"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgefarm agent", description="Run an EdgeFarm device agent.")
    parser.add_argument("--server", required=True, help="the gateway's URL, e.g. http://farm:8000")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                        help=f"an agent token (role agent); default ${TOKEN_ENV}, which keeps it out of `ps`")
    parser.add_argument("--config", required=True, help="the agent's TOML file (see docs/agent.md)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--version", action="version", version=f"edgefarm-agent {__version__}")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error(f"an agent token is needed: --token or ${TOKEN_ENV}")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "debug":
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per heartbeat and poll drowns the job log
    log = logging.getLogger("edgefarm_agent")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2

    client = GatewayClient(args.server, args.token)
    agent = Agent(config, client)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: agent.stop())
    try:
        agent.run()
    except AgentStopped:
        pass
    except GatewayError as exc:
        log.error("the gateway at %s refused this agent: %s", args.server, exc.detail)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
