from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import ValidationError

from edgefarm.wire import DeviceOut, DeviceSelector, Label, OsLabel
from edgefarm_gateway.deps import SessionDep, SettingsDep, UserDep
from edgefarm_gateway.devices import service
from edgefarm_gateway.errors import BadRequest, error_responses

router = APIRouter(prefix="/devices", tags=["devices"], responses=error_responses(400))


@router.get("", response_model=list[DeviceOut])
def list_devices(session: SessionDep, settings: SettingsDep, _: UserDep, name: Label = "", os: OsLabel = "",
                 attributes: Annotated[str, Query(description="comma-separated, all must match", max_length=2000)] = ""
                 ) -> list[DeviceOut]:
    """Devices by pool name, os (exact or a version range like `[12,14)`) and attributes."""
    try:
        selector = DeviceSelector(name=name, os=os, attributes=[a for a in attributes.split(",") if a])
    except ValidationError as exc:
        raise BadRequest(f"attributes: {exc.errors()[0]['msg']}") from None
    return service.list_devices(session, settings, selector)
