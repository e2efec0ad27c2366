"""Pipeline spec files (edgefarm.pipeline_spec): paths, and mistakes refused with the keys that were meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefarm.pipeline_spec import load_spec

SPEC = """\
name: seg
model: {model}
devices: {devices}
eval_inputs: data/eval.npz
metric: {{name: iou, output: mask}}
gates: {gates}
"""


def write(tmp_path: Path, model: str = "m.onnx", devices: str = '["Host CPU"]',
          gates: str = "{max_metric_drop: 0.01}", extra: str = "") -> Path:
    spec = tmp_path / "specs" / "s.yaml"
    spec.parent.mkdir(exist_ok=True)
    spec.write_text(SPEC.format(model=model, devices=devices, gates=gates) + extra)
    return spec


def test_paths_are_relative_to_the_spec_and_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    arguments = load_spec(write(tmp_path, model="~/models/m.onnx"))
    assert arguments["model"] == tmp_path / "home" / "models" / "m.onnx"
    assert arguments["eval_inputs"] == str(tmp_path / "specs" / "data" / "eval.npz")
    assert arguments["ground_truth"] is None


def test_devices_by_name_or_with_os_and_attributes(tmp_path):
    devices = '["Host CPU", {name: Pixel 8, os: "[13,15)", attributes: [chipset:gs301]}]'
    first, second = load_spec(write(tmp_path, devices=devices))["devices"]
    assert first.name == "Host CPU" and second.name == "Pixel 8"
    assert second.os == "[13,15)" and second.attributes == ["chipset:gs301"]


@pytest.mark.parametrize("spec, message", [
    ({"extra": "calibraton: c.npz\n"}, "calibraton: unknown key (known: name, model, devices"),
    ({"gates": "{max_latency: 30}"}, "gates.max_latency: unknown key (known: max_metric_drop, min_metric, "
                                     "max_latency_ms"),
    ({"devices": "[{name: Pixel 8, attribtues: [chipset:gs301]}]"},
     "s.yaml: devices.0.attribtues: unknown key (known: name, os, attributes)$"),
])
def test_a_misspelt_key_is_refused_with_the_keys_meant_there(tmp_path, spec, message):
    with pytest.raises(ValueError, match=r"^.*" + message.replace("(", r"\(").replace(")", r"\)")):
        load_spec(write(tmp_path, **spec))


def test_not_a_mapping(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="must be a YAML mapping"):
        load_spec(path)
