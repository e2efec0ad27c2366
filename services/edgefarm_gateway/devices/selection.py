"""Which devices a job's selector means: a pool name, an os (exact, or a version range) and attributes."""

from __future__ import annotations

import re

from edgefarm.wire import DeviceSelector

# "[12,14)", "android [12,14)", "(13,]": an interval of os major versions, brackets inclusive, parens exclusive.
_RANGE = re.compile(r"^\s*(?P<os>[a-zA-Z][\w ]*?)?\s*(?P<lo>[\[(])\s*(?P<a>[\d.]*)\s*,"
                    r"\s*(?P<b>[\d.]*)\s*(?P<hi>[\])])\s*$")
_VERSION = re.compile(r"(\d+(?:\.\d+)*)")


def _version(text: str) -> tuple[int, ...] | None:
    match = _VERSION.search(text)
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


def os_matches(spec: str, device_os: str) -> bool:
    if not spec:
        return True
    match = _RANGE.match(spec)
    if match is None:
        return spec.strip().lower() == device_os.strip().lower()
    if match.group("os") and not device_os.lower().startswith(match.group("os").strip().lower()):
        return False
    version = _version(device_os)
    if version is None:
        return False
    low, high = match.group("a"), match.group("b")
    if low:
        bound = tuple(int(p) for p in low.split("."))
        if version < bound or (match.group("lo") == "(" and version == bound):
            return False
    if high:
        bound = tuple(int(p) for p in high.split("."))
        if version > bound or (match.group("hi") == ")" and version[: len(bound)] >= bound):
            return False
    return True


def valid_os_spec(spec: str) -> bool:
    return not spec or "[" not in spec and "(" not in spec or _RANGE.match(spec) is not None


def matches(selector: DeviceSelector, name: str, os: str, attributes: list[str]) -> bool:
    return ((not selector.name or selector.name == name) and os_matches(selector.os, os)
            and set(selector.attributes) <= set(attributes))
