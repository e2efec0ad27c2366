"""The benchmark corpus (bench/corpus_models.py) exports what torch computes: a wrong export would make every
conversion figure in bench/corpus.py meaningless, so a few diverse entries are exported and run in ONNX Runtime
against torch here, and the corpus' coverage promises (names, opsets, families) are checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from bench.corpus_models import CORPUS, by_name

# 4-D softmax + ceil-mode pooling; two inputs/outputs; int64 ids + mask; a bidirectional GRU; 6-D windows + roll;
# a dynamic batch axis (run at batch 3).
DIVERSE = ["squeezenet1_1", "multi_io", "bert_tiny", "gru_bidirectional", "swin_tiny", "mlp"]


def torch_outputs(model: torch.nn.Module, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(*(torch.from_numpy(v) for v in feeds.values()))
    return [t.numpy() for t in ((out,) if isinstance(out, torch.Tensor) else out)]


@pytest.mark.parametrize("name", DIVERSE)
def test_export_matches_torch(name: str, tmp_path: Path) -> None:
    entry = by_name(name)
    path = entry.export(tmp_path / f"{name}.onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == list(entry.inputs)
    assert [o.name for o in graph.output] == list(entry.outputs)
    assert onnx.load(str(path)).opset_import[0].version == entry.opset
    batch = 3 if entry.dynamic_batch else 1
    if entry.dynamic_batch:
        assert all(i.type.tensor_type.shape.dim[0].dim_param for i in graph.input)
    samples = entry.sample_inputs(batch, seed=5)
    feeds = {k: v.reshape(batch, *v.shape[2:]) for k, v in samples.items()}  # the batch axis holds the samples
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)
    expected = torch_outputs(entry.build(), feeds)
    assert len(got) == len(expected) == len(entry.outputs)
    for name_, g, e in zip(entry.outputs, got, expected):
        assert g.shape == e.shape, name_
        assert float(np.std(e)) > 0 or e.size == batch, f"{name_} is constant: the model is degenerate"
        np.testing.assert_allclose(g, e, atol=1e-4, rtol=1e-4, err_msg=name_)


def test_build_is_seeded() -> None:
    entry = by_name("multi_io")
    feeds = {k: v[0] for k, v in entry.sample_inputs(1, seed=2).items()}
    for a, b in zip(torch_outputs(entry.build(), feeds), torch_outputs(entry.build(), feeds)):
        np.testing.assert_array_equal(a, b)


def test_corpus_coverage() -> None:
    names = [m.name for m in CORPUS]
    assert len(set(names)) == len(names) >= 40
    assert {11, 13, 14, 16, 17, 18} <= {m.opset for m in CORPUS}
    assert {"classification", "detection", "segmentation", "nlp", "audio", "sequence", "pose"} <= {
        m.family for m in CORPUS}
    assert any(m.dynamic_batch for m in CORPUS)
    assert any(len(m.inputs) > 1 for m in CORPUS) and any(len(m.outputs) > 1 for m in CORPUS)
    for m in CORPUS:
        assert m.note, m.name
        for name, (shape, dtype) in m.inputs.items():
            assert shape[0] == 1, (m.name, name)
            sample = m.sample_inputs(2, seed=0)[name]
            assert sample.shape == (2, *shape) and sample.dtype == np.dtype(dtype), (m.name, name)
    ids = by_name("bert_tiny").sample_inputs(3, seed=0)
    assert ids["input_ids"].max() < 30522 and (ids["attention_mask"] == 1).all()
