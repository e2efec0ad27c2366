"""EdgeFarm device agent: runs on the machine a device is attached to (or on the board itself), pulls jobs for
the devices it owns from the gateway, runs them with a real runtime and posts the results back.

    python -m edgefarm_agent --server http://farm:8000 --token ef_… --config agent.toml

Light on purpose: this package imports no runtime until a job needs one (and then only in the job's own
process), and never TensorFlow or torch. docs/agent.md is the operator's and user's reference.
"""

from edgefarm import __version__

from edgefarm_agent.client import GatewayClient
from edgefarm_agent.config import AgentConfig, ConfigError, load_config, parse_config
from edgefarm_agent.loop import Agent

__all__ = ["Agent", "AgentConfig", "ConfigError", "GatewayClient", "__version__", "load_config", "parse_config"]
