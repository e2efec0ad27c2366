"""The model registry: named models whose versions the delivery pipeline registers, with the evidence that gated
them, and release channels (staging, production…) that say which version devices fetch.

A channel only moves by promote and rollback, and every move is a ChannelEvent: "roll back" means "go back to
the version this channel held before its current version was promoted", read from those events.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgefarm.wire import (ChannelEventOut, ChannelOut, ModelVersionOut, ModelVersionSummary, Page,
                           RegisteredModelDetailOut, RegisteredModelOut, VersionTarget)
from edgefarm_gateway.errors import BadRequest, Conflict, NotFound
from edgefarm_gateway.models.service import EXTENSIONS
from edgefarm_gateway.orm import Channel, ChannelEvent, Model, ModelVersion, RegisteredModel, new_id, utcnow
from edgefarm_gateway.registry import repository
from edgefarm_gateway.tokens.service import Principal

NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
CHANNEL_RULE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
EVENTS_SHOWN = 50
TARGET_JOB_KEYS = ("compile_job_id", "profile_job_id", "inference_job_id")


# --- checks ------------------------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RULE.match(name):
        raise BadRequest(f"{name!r} is not a registry model name: use 1-100 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit (e.g. 'portrait-seg')")
    return name


def check_channel(channel: str) -> str:
    if not CHANNEL_RULE.match(channel):
        raise BadRequest(f"{channel!r} is not a channel name: use 1-32 lower-case letters, digits, '_' or '-', "
                         "starting with a letter (e.g. 'staging', 'production')")
    return channel


def _resolve_targets(session: Session, targets: list[dict]) -> list[dict[str, Any]]:
    """The pipeline's targets with each compiled model's hash, size and format, so a fetch needs no join."""
    if not targets:
        raise BadRequest("a version needs at least one target: [{'device': 'Host CPU', 'model_id': 'm…', …}]")
    resolved: list[dict[str, Any]] = []
    for i, target in enumerate(targets):
        if not isinstance(target, dict):
            raise BadRequest(f"targets[{i}] is not a dict: give {{'device': 'Host CPU', 'model_id': 'm…', …}}")
        device, model_id = target.get("device"), target.get("model_id")
        if not isinstance(device, str) or not device.strip():
            raise BadRequest(f"targets[{i}] names no device: give its device pool's name, e.g. 'Host CPU'")
        if any(t["device"] == device for t in resolved):
            raise BadRequest(f"targets name device {device!r} twice: a version holds one target per device pool")
        model = session.get(Model, model_id) if isinstance(model_id, str) else None
        if model is None:
            raise BadRequest(f"targets[{i}] ({device}): no model {model_id!r}; give the compiled target's model id")
        jobs = {key: target.get(key) for key in TARGET_JOB_KEYS}
        resolved.append(VersionTarget(device=device, model_id=model.id, sha256=model.sha256, size=model.size,
                                      format=model.format, **jobs).model_dump())
    return resolved


# --- registering (called by the delivery pipeline) ----------------------------------------------------------------


def _get_or_create(session: Session, name: str, owner_id: str | None) -> RegisteredModel:
    """The registered model, locked for this transaction, created on first use.

    Two first registrations racing on PostgreSQL both see no row; the unique name makes the second insert fail
    (inside a savepoint), and it then takes the row the first one made.
    """
    model = repository.by_name(session, name, lock=True)
    if model is not None:
        return model
    try:
        with session.begin_nested():
            model = RegisteredModel(id=new_id("r"), name=name, owner_id=owner_id)
            session.add(model)
    except IntegrityError:
        model = repository.by_name(session, name, lock=True)
        if model is None:
            raise
    return model


def register_version(session: Session, *, name: str, source_model_id: str, targets: list[dict], evidence: dict,
                     pipeline_id: str | None, submitted_by: Principal) -> ModelVersion:
    """Register the next version (1, 2, 3…) of `name`, creating the registered model on first use.

    `targets`: one {"device", "model_id", "compile_job_id", "profile_job_id", "inference_job_id"} per device pool;
    `evidence`: whatever the pipeline measured and gated (stored as it is, shown by `edgefarm registry show`).
    Nothing is promoted: a channel only moves when someone promotes the version.
    """
    check_name(name)
    if session.get(Model, source_model_id) is None:
        raise BadRequest(f"source_model_id: no model {source_model_id!r}")
    resolved = _resolve_targets(session, targets)
    try:
        evidence = json.loads(json.dumps(evidence if evidence is not None else {}))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"evidence must be JSON (dicts, lists, strings, numbers): {exc}") from None
    if not isinstance(evidence, dict):
        raise BadRequest("evidence must be a dict, e.g. {'gates': [...], 'metrics': {...}}")

    registered = _get_or_create(session, name, submitted_by.id)
    # The row lock (PostgreSQL) or the write lock (SQLite's BEGIN IMMEDIATE) serialises this read and the insert;
    # the unique (model, number) constraint turns any slip into an error rather than a duplicate number.
    number = repository.max_number(session, registered.id) + 1
    version = ModelVersion(id=new_id("v"), registered_model_id=registered.id, number=number,
                           source_model_id=source_model_id, targets=resolved, evidence=evidence,
                           pipeline_id=pipeline_id, submitted_by=submitted_by.name,
                           submitted_by_id=submitted_by.id)
    session.add(version)
    session.flush()
    return version


# --- reading -------------------------------------------------------------------------------------------------------


def get(session: Session, name: str, *, lock: bool = False) -> RegisteredModel:
    model = repository.by_name(session, name, lock=lock)
    if model is None:
        raise NotFound(f"no registered model {name!r}; `edgefarm registry list` shows them (a pipeline whose gates "
                       "pass registers a model's first version)")
    return model


def get_version(session: Session, model: RegisteredModel, number: int) -> ModelVersion:
    version = repository.version(session, model.id, number)
    if version is None:
        latest = repository.max_number(session, model.id)
        has = f"its versions are 1 to {latest}" if latest > 1 else "its only version is 1" if latest else \
            "it has no versions yet"
        raise NotFound(f"{model.name} has no version {number}; {has}")
    return version


def _summary(version: ModelVersion) -> ModelVersionSummary:
    return ModelVersionSummary(id=version.id, number=version.number, source_model_id=version.source_model_id,
                               devices=[t["device"] for t in version.targets], pipeline_id=version.pipeline_id,
                               submitted_by=version.submitted_by, created_at=version.created_at)


def _event_out(event: ChannelEvent) -> ChannelEventOut:
    return ChannelEventOut(channel=event.channel, action=event.action, from_version=event.from_version,
                           to_version=event.to_version, reason=event.reason, by=event.by, at=event.at)


def version_out(session: Session, model: RegisteredModel, version: ModelVersion) -> ModelVersionOut:
    return ModelVersionOut(**_summary(version).model_dump(), model=model.name,
                           targets=[VersionTarget.model_validate(t) for t in version.targets],
                           evidence=version.evidence or {}, channels=repository.channels_on(session, version.id))


def list_page(session: Session, *, name: str | None, offset: int, limit: int) -> Page[RegisteredModelOut]:
    rows, total = repository.page(session, name=name, offset=offset, limit=limit)
    ids = [m.id for m in rows]
    latest, channels = repository.latest_numbers(session, ids), repository.channel_numbers(session, ids)
    items = [RegisteredModelOut(id=m.id, name=m.name, created_at=m.created_at, latest_version=latest.get(m.id),
                                channels=channels.get(m.id, {})) for m in rows]
    return Page[RegisteredModelOut](items=items, total=total, offset=offset, limit=limit)


def detail(session: Session, model: RegisteredModel, *, versions: int | None = None,
           events: int = EVENTS_SHOWN) -> RegisteredModelDetailOut:
    found = repository.versions(session, model.id, limit=versions)
    latest = repository.max_number(session, model.id) or None
    return RegisteredModelDetailOut(
        id=model.id, name=model.name, created_at=model.created_at, latest_version=latest,
        channels=repository.channel_numbers(session, [model.id]).get(model.id, {}),
        versions=[_summary(v) for v in found],
        events=[_event_out(e) for e in repository.events(session, model.id, limit=events)])


def releases(session: Session, *, limit: int = 50, versions: int = 10,
             events: int = 5) -> list[RegisteredModelDetailOut]:
    """The newest registered models with their latest versions and channel changes (the dashboard's Releases)."""
    rows, _ = repository.page(session, name=None, offset=0, limit=limit)
    return [detail(session, m, versions=versions, events=events) for m in rows]


# --- channels ------------------------------------------------------------------------------------------------------


def _channel_out(model: RegisteredModel, channel: Channel, number: int | None, event: ChannelEvent) -> ChannelOut:
    return ChannelOut(model=model.name, name=channel.name, version=number, updated_at=channel.updated_at,
                      event=_event_out(event))


def _move(session: Session, model: RegisteredModel, channel: Channel, version: ModelVersion, *, action: str,
          from_version: int | None, reason: str, by: Principal) -> ChannelOut:
    now = utcnow()
    channel.version_id, channel.updated_at = version.id, now
    event = ChannelEvent(registered_model_id=model.id, channel=channel.name, action=action,
                         from_version=from_version, to_version=version.number, reason=reason, by=by.name,
                         by_id=by.id, at=now)
    session.add(event)
    session.flush()
    return _channel_out(model, channel, version.number, event)


def _current_number(session: Session, channel: Channel | None) -> int | None:
    if channel is None or channel.version_id is None:
        return None
    return session.get(ModelVersion, channel.version_id).number


def promote(session: Session, name: str, channel_name: str, number: int, *, reason: str,
            by: Principal) -> ChannelOut:
    """Make version `number` what the channel serves (the channel is created on its first promotion)."""
    check_channel(channel_name)
    model = get(session, name, lock=True)  # one channel change at a time per model
    version = get_version(session, model, number)
    channel = repository.channel(session, model.id, channel_name)
    current = _current_number(session, channel)
    if current == number:
        raise Conflict(f"version {number} of {name} is already current on {channel_name}; nothing to promote")
    if channel is None:
        channel = Channel(registered_model_id=model.id, name=channel_name)
        session.add(channel)
    return _move(session, model, channel, version, action="promote", from_version=current,
                 reason=reason.strip(), by=by)


def rollback(session: Session, name: str, channel_name: str, *, reason: str, by: Principal) -> ChannelOut:
    """Put back the version the channel held before its current version was promoted."""
    check_channel(channel_name)
    if not reason or not reason.strip():
        raise BadRequest("a rollback needs a reason (what is wrong with the current version): it is kept in the "
                         "channel's history, e.g. --reason 'accuracy regression on Pixel 8'")
    model = get(session, name, lock=True)
    channel = repository.channel(session, model.id, channel_name)
    current = _current_number(session, channel)
    if channel is None or current is None:
        raise Conflict(f"nothing was promoted to {channel_name} of {name}, so there is nothing to roll back: "
                       f"edgefarm registry promote {name} VERSION --channel {channel_name}")
    promoted = repository.last_promote_to(session, model.id, channel_name, current)
    if promoted is None or promoted.from_version is None:
        raise Conflict(f"version {current} was the first version promoted to {channel_name} of {name}: there is no "
                       f"earlier version to roll back to; promote the version you want instead "
                       f"(edgefarm registry promote {name} VERSION --channel {channel_name})")
    previous = get_version(session, model, promoted.from_version)
    return _move(session, model, channel, previous, action="rollback", from_version=current,
                 reason=reason.strip(), by=by)


# --- fetching ------------------------------------------------------------------------------------------------------


def pick_target(model: RegisteredModel, version: ModelVersion, device: str | None) -> dict[str, Any]:
    devices = [t["device"] for t in version.targets]
    if device is None or device == "":
        if len(version.targets) == 1:
            return version.targets[0]
        raise BadRequest(f"version {version.number} of {model.name} has targets for {len(devices)} devices "
                         f"({', '.join(devices)}): say which with ?device=<device pool name>")
    for target in version.targets:
        if target["device"] == device:
            return target
    raise NotFound(f"version {version.number} of {model.name} has no target for device {device!r}; it has targets "
                   f"for: {', '.join(devices)}")


def channel_target(session: Session, name: str, channel_name: str,
                   device: str | None) -> tuple[RegisteredModel, ModelVersion, dict[str, Any]]:
    check_channel(channel_name)
    model = get(session, name)
    channel = repository.channel(session, model.id, channel_name)
    if channel is None or channel.version_id is None:
        raise NotFound(f"nothing promoted to {channel_name} yet: "
                       f"edgefarm registry promote {name} VERSION --channel {channel_name}")
    version = session.get(ModelVersion, channel.version_id)
    return model, version, pick_target(model, version, device)


def version_target(session: Session, name: str, number: int,
                   device: str | None) -> tuple[RegisteredModel, ModelVersion, dict[str, Any]]:
    model = get(session, name)
    version = get_version(session, model, number)
    return model, version, pick_target(model, version, device)


def filename(model: RegisteredModel, version: ModelVersion, target: dict[str, Any]) -> str:
    return f"{model.name}-v{version.number}{EXTENSIONS.get(target['format'], '')}"
