"""Agents and their devices: registration, heartbeats, and what state each device is in."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from edgefarm.wire import AgentRegisterIn, DeviceOut, DeviceSelector, DeviceState
from edgefarm_gateway.devices import repository
from edgefarm_gateway.devices.selection import matches, valid_os_spec
from edgefarm_gateway.errors import BadRequest, Forbidden, NotFound
from edgefarm_gateway.orm import Agent, Device, new_id, utcnow
from edgefarm_gateway.settings import Settings
from edgefarm_gateway.tokens import service as tokens
from edgefarm_gateway.tokens.service import Principal


def state_of(device: Device, settings: Settings) -> DeviceState:
    horizon = utcnow() - timedelta(seconds=settings.device_offline_after_seconds)
    if device.agent.last_seen_at < horizon:
        return "offline"
    return "busy" if device.current_job_id else "online"


def to_out(device: Device, settings: Settings) -> DeviceOut:
    return DeviceOut(id=device.id, name=device.name, serial=device.serial, os=device.os,
                     attributes=device.attributes, agent_id=device.agent_id, agent_name=device.agent.name,
                     state=state_of(device, settings), last_seen_at=device.agent.last_seen_at,
                     current_job_id=device.current_job_id)


def register(session: Session, body: AgentRegisterIn, principal: Principal) -> Agent:
    """Idempotent: the same agent name and device serials give back the same ids; devices it no longer
    declares are retired (kept, since past jobs point at them, but never offered again)."""
    if len({d.serial for d in body.devices}) != len(body.devices):
        raise BadRequest("every device of an agent needs its own serial")
    if principal.pools is not None:
        # A device in a pool is offered that pool's jobs and their users' models: the token must allow the pool.
        foreign = sorted({d.name for d in body.devices} - set(principal.pools))
        if foreign:
            raise Forbidden(f"this agent token may serve the pools {', '.join(principal.pools)}, not "
                            f"{', '.join(foreign)}: rename the device in the agent's config, or create a token "
                            "whose --pools include it")
    tokens.bind_agent(session, principal, body.agent_name)
    agent = repository.agent_by_name(session, body.agent_name)
    now = utcnow()
    if agent is None:
        agent = Agent(id=new_id("a"), name=body.agent_name, token_id=principal.id, devices=[])
        session.add(agent)
    elif agent.token_id != principal.id:
        if tokens.is_active(session, agent.token_id):
            raise Forbidden(f"agent {body.agent_name!r} is registered with another token; give this agent its "
                            "own --name, or revoke the old token")
        agent.token_id = principal.id  # the agent's old token was revoked: this one, bound to it, replaces it
    agent.version, agent.last_seen_at = body.version, now
    existing = {d.serial: d for d in agent.devices}
    for spec in body.devices:
        device = existing.pop(spec.serial, None)
        if device is None:
            device = Device(id=new_id("v"), agent_id=agent.id, serial=spec.serial)
            agent.devices.append(device)
        device.name, device.os, device.attributes = spec.name, spec.os, list(spec.attributes)
        device.retired_at = None
    for gone in existing.values():
        gone.retired_at = gone.retired_at or now
    session.flush()
    return agent


def get_agent(session: Session, agent_id: str, token_id: str) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"no agent {agent_id}: register first")
    if agent.token_id != token_id:
        raise Forbidden(f"agent {agent_id} belongs to another token")
    return agent


def heartbeat(session: Session, agent_id: str, token_id: str) -> None:
    get_agent(session, agent_id, token_id).last_seen_at = utcnow()


def matching(session: Session, selector: DeviceSelector) -> list[Device]:
    return [d for d in repository.all_devices(session, selector.name or None)
            if matches(selector, d.name, d.os, d.attributes)]


def list_devices(session: Session, settings: Settings, selector: DeviceSelector) -> list[DeviceOut]:
    if not valid_os_spec(selector.os):
        raise BadRequest(f"os {selector.os!r}: give an exact os ('android 14') or a version range ('[12,14)')")
    return [to_out(d, settings) for d in matching(session, selector)]


def require_pool(session: Session, settings: Settings, selector: DeviceSelector) -> str:
    """Refuse a selector no registered device can ever satisfy; returns a note when none is online now."""
    if not valid_os_spec(selector.os):
        raise BadRequest(f"device os {selector.os!r}: give an exact os or a version range such as '[12,14)'")
    candidates = matching(session, selector)
    if not candidates:
        known = sorted({f"{d.name} ({d.os})" if d.os else d.name for d in repository.all_devices(session)})
        wanted = selector.name or "any device"
        raise BadRequest(f"no device matches {wanted!r}"
                         + (f" with os {selector.os!r}" if selector.os else "")
                         + (f" and attributes {', '.join(selector.attributes)}" if selector.attributes else "")
                         + f"; the farm's devices are: {', '.join(known) or 'none (start an agent)'}")
    if all(state_of(d, settings) == "offline" for d in candidates):
        return f"waiting: every matching device ({selector.name or 'any'}) is offline"
    return ""
