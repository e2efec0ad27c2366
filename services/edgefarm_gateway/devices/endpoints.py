from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from edgefarm.wire import DeviceOut, DeviceSelector
from edgefarm_gateway.deps import SessionDep, SettingsDep, UserDep
from edgefarm_gateway.devices import service

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("", response_model=list[DeviceOut])
def list_devices(session: SessionDep, settings: SettingsDep, _: UserDep, name: str = "", os: str = "",
                 attributes: Annotated[str, Query(description="comma-separated, all must match")] = ""
                 ) -> list[DeviceOut]:
    """Devices by pool name, os (exact or a version range like `[12,14)`) and attributes."""
    selector = DeviceSelector(name=name, os=os, attributes=[a for a in attributes.split(",") if a])
    return service.list_devices(session, settings, selector)
