"""What users pass to the SDK, turned into what crosses the wire: input specs, datasets, models, devices."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import edgefarm as ef
import numpy as np
import onnx
import pytest
import torch
from edgefarm.datasets import describe_npz, open_dataset_file, read_npz, stack_entries, write_npz
from edgefarm.jobs import normalize_input_specs
from edgefarm.models import file_name_for, open_model_file, sniff_suffix
from onnx import TensorProto, helper


def tiny_onnx() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["image"], ["out"])],
        "relu",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# -- input specs ---------------------------------------------------------------------------------------------------


def test_input_specs_take_qai_hub_shapes():
    specs = normalize_input_specs(
        {
            "image": ((1, 3, 256, 256), "float32"),
            "mask": (1, 1, 256, 256),
            "ids": ([1, np.int64(16)], np.int32),
            "scale": ef.TensorSpec(shape=[1], dtype="float16"),
        }
    )
    assert {name: (s.shape, s.dtype) for name, s in specs.items()} == {
        "image": ([1, 3, 256, 256], "float32"),
        "mask": ([1, 1, 256, 256], "float32"),
        "ids": ([1, 16], "int32"),
        "scale": ([1], "float16"),
    }
    ordered = normalize_input_specs([("b", (1, 2)), ("a", ((3,), "uint8"))])
    assert list(ordered) == ["b", "a"] and ordered["a"].dtype == "uint8"
    assert normalize_input_specs(None) is None


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ({"image": ((1, -3), "float32")}, "positive"),
        ({"image": ((1, 3), "floaty")}, "not a numpy dtype"),
        ({"image": ((1, 3), "object")}, "not numeric"),
        ({"image": ((1, 3.5), "float32")}, "integers"),
        ([("image",)], "pairs"),
    ],
)
def test_input_specs_refuse_what_cannot_be_a_tensor(specs, message):
    with pytest.raises(ValueError, match=message):
        normalize_input_specs(specs)


def test_input_specs_refuse_wrong_types():
    with pytest.raises(TypeError):
        normalize_input_specs("image=1,3,224,224")
    with pytest.raises(TypeError, match="shape, dtype"):
        normalize_input_specs({"image": 224})


# -- datasets ------------------------------------------------------------------------------------------------------


def test_dataset_round_trip_through_npz():
    rng = np.random.default_rng(0)
    data = {
        "image": [rng.random((1, 3, 4, 4), dtype=np.float32) for _ in range(5)],
        "file": [
            np.arange(3, dtype=np.int64) + i for i in range(5)
        ],  # collides with np.savez's own parameter
    }
    arrays = stack_entries(data)
    assert arrays["image"].shape == (5, 1, 3, 4, 4) and arrays["file"].shape == (5, 3)
    buffer = io.BytesIO()
    write_npz(arrays, buffer)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as loaded:  # what the farm does
        assert sorted(loaded.files) == ["file", "image"]
        np.testing.assert_array_equal(loaded["image"], arrays["image"])
    buffer.seek(0)
    back = read_npz(buffer)
    assert len(back["image"]) == 5
    for original, restored in zip(data["image"], back["image"], strict=True):
        np.testing.assert_array_equal(original, restored)


def test_dataset_refuses_ragged_counts_before_stacking():
    with pytest.raises(ValueError, match="same number of samples") as caught:
        stack_entries({"image": [np.zeros((1, 3))] * 4, "mask": [np.zeros((1, 1))] * 3})
    assert "'image': 4" in str(caught.value) and "'mask': 3" in str(caught.value)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"image": [np.zeros((1, 3)), np.zeros((1, 4))]}, ValueError, r"dataset\['image'\]\[1\]"),
        (
            {"image": [np.zeros(2, np.float32), np.zeros(2, np.float64)]},
            ValueError,
            "share one shape and dtype",
        ),
        ({"image": [np.array(["a", "b"])]}, ValueError, "numeric dtype"),
        ({"image": []}, ValueError, "no samples"),
        ({}, ValueError, "non-empty dict"),
        ({"image": np.zeros((4, 3))}, TypeError, r"list\(array\)"),
    ],
)
def test_dataset_refuses_what_the_farm_could_not_use(data, error, message):
    with pytest.raises(error, match=message):
        stack_entries(data)


def test_npz_files_are_checked_without_loading(tmp_path):
    good = tmp_path / "calib.npz"
    np.savez(good, image=np.zeros((8, 1, 3, 4, 4), np.float32), ids=np.zeros((8, 2), np.int64))
    assert describe_npz(good) == {"image": (8, (1, 3, 4, 4), "float32"), "ids": (8, (2,), "int64")}
    ragged = tmp_path / "ragged.npz"
    np.savez(ragged, image=np.zeros((8, 3)), mask=np.zeros((7, 3)))
    with pytest.raises(ValueError, match="same number of samples"):
        describe_npz(ragged)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, image=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="numeric array"):
        describe_npz(pickled)


def test_open_dataset_file_streams_an_npz_as_is_and_encodes_a_dict(tmp_path):
    path = tmp_path / "calib.npz"
    np.savez(path, image=np.ones((2, 3), np.float32))
    with open_dataset_file(path) as dataset_file:
        assert dataset_file.filename == "calib.npz" and dataset_file.file.read() == path.read_bytes()
    with open_dataset_file({"image": [np.ones(3, np.float32)] * 2}) as dataset_file:
        assert dataset_file.entries == {"image": (2, (3,), "float32")}
        assert zipfile.ZipFile(dataset_file.file).namelist() == ["image.npy"]
    with pytest.raises(ValueError, match=".npz"), open_dataset_file(tmp_path / "calib.npy"):
        pass


# -- models --------------------------------------------------------------------------------------------------------


def test_model_path_is_streamed_from_disk(tmp_path):
    path = tmp_path / "net.onnx"
    path.write_bytes(tiny_onnx().SerializeToString())
    with open_model_file(path) as (filename, file):
        assert filename == "net.onnx"
        assert file.name == str(path)  # the file itself, not a copy in memory
    with open_model_file(str(path)) as (filename, _):
        assert filename == "net.onnx"


def test_model_path_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"\.onnx, \.pt"), open_model_file(tmp_path / "net.h5"):
        pass
    with pytest.raises(FileNotFoundError, match="missing.onnx"), open_model_file(tmp_path / "missing.onnx"):
        pass


def test_model_bytes_keep_their_format():
    onnx_bytes = tiny_onnx().SerializeToString()
    with open_model_file(onnx_bytes) as (filename, file):
        assert filename == "model.onnx" and file.read() == onnx_bytes
    assert sniff_suffix(b"PK\x03\x04rest") == ".pt"
    assert sniff_suffix(b"\x1c\x00\x00\x00TFL3rest") == ".tflite"


def test_onnx_model_proto_is_serialized():
    proto = tiny_onnx()
    with open_model_file(proto) as (filename, file):
        assert filename == "model.onnx"
        assert onnx.load_model_from_string(file.read()) == proto


def test_torchscript_module_is_saved_and_loads_back():
    traced = torch.jit.trace(torch.nn.Conv2d(3, 4, 3).eval(), torch.zeros(1, 3, 8, 8))
    with open_model_file(traced) as (filename, file):
        assert filename == "model.pt"
        loaded = torch.jit.load(io.BytesIO(file.read()))
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(loaded(x), traced(x))


def test_plain_torch_module_is_refused_with_the_fix():
    class Net(torch.nn.Module):
        def forward(self, x):
            return x * 2

    with pytest.raises(TypeError, match=r"torch\.jit\.trace") as caught, open_model_file(Net()):
        pass
    assert "Net is a torch.nn.Module" in str(caught.value)


def test_unknown_model_objects_are_refused():
    with pytest.raises(TypeError, match="got dict"), open_model_file({"weights": []}):
        pass


def test_import_edgefarm_does_not_import_torch_or_onnx():
    code = "import sys, edgefarm; print('torch' in sys.modules, 'onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_download_names_are_safe():
    assert file_name_for("seg/int8 v2", ".tflite") == "seg_int8_v2.tflite"
    assert file_name_for("net.onnx", ".onnx") == "net.onnx"
    assert file_name_for("../..", ".npz") == "unnamed.npz"


# -- devices -------------------------------------------------------------------------------------------------------


def test_device_attributes_take_a_string_or_a_list():
    assert ef.Device(attributes="framework:tflite").attributes == ["framework:tflite"]
    device = ef.Device("Samsung Galaxy S24", os="14", attributes=("chipset:x", "framework:tflite"))
    assert device.to_wire().model_dump() == {
        "name": "Samsung Galaxy S24",
        "os": "14",
        "attributes": ["chipset:x", "framework:tflite"],
    }
    with pytest.raises(ValueError, match="non-empty strings"):
        ef.Device(attributes=[""])


def test_job_status_reads_like_qai_hub():
    done = ef.JobStatus(ef.JobState.SUCCESS)
    assert done.finished and done.success and not done.failure and done.code == "SUCCESS"
    assert ef.JobStatus.State.FAILED is ef.JobState.FAILED
    failed = ef.JobStatus(ef.JobState.FAILED, "onnx2tf has no QuickGelu")
    assert failed.finished and failed.failure and not failed.success
    assert ef.JobStatus(ef.JobState.CANCELLED).failure
    assert ef.JobStatus(ef.JobState.CREATED).pending and not ef.JobStatus(ef.JobState.CREATED).running
    assert ef.JobStatus(ef.JobState.OPTIMIZING_MODEL).running
