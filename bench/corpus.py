"""Corpus benchmark: the farm against the onnx2tf command line over ~45 public architectures (bench/corpus_models.py).

    .venv/bin/python bench/corpus.py [--only a,b] [--skip-cli] [--skip-int8] [--out docs/benchmarks.md] [--json f]
    .venv/bin/python bench/corpus.py --from-json f [--out docs/benchmarks.md]   # render a recorded run again

Why: a farm is only worth having if what it hands back is right for the models users actually bring. Per model:

- farm: one real one-machine farm for the whole run (as bench/compile.py starts it); an FP32 compile (options "")
  and a full-INT8 compile (calibrated on 8 seeded samples; n/a for models with integer inputs); state, verdict,
  strategy, the conversion attempts, wall seconds from submit to finished;
- peer: `onnx2tf -i m.onnx -o out -n` on a copy of the same ONNX, in its own cwd with the sample file that keeps it
  offline; did `*_float32.tflite` come out, is it right, how long; and `-oiqt -cind ...` for INT8 (float inputs);
- an independent check written here, not the farm's verifier: ONNX Runtime against each .tflite in LiteRT on the
  same seeded inputs, outputs matched by name (the farm's `target_outputs` map target tensors to source names and
  layouts; the CLI's signature keys are the ONNX names), NCHW/NHWC handled from the recorded layout (farm) or by
  trying the transpose (CLI, reported). FP32 is correct when max|d| / max|ref| <= 1e-3 for every output; INT8
  reports the lowest cosine similarity.

Prints a table, totals against their targets (SUCCESS-but-wrong 0, CLI-correct-but-farm-failed 0, median farm FP32
seconds / median CLI seconds <= 0.5), machine load and CPU seconds. `--out` rewrites the section between
`<!-- corpus:begin -->` and `<!-- corpus:end -->`; `--json` dumps the raw rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.*

from bench.corpus_models import CORPUS, CorpusModel, by_name  # noqa: E402
from bench.peers import ONNX2TF_SAMPLE_FILE, free_port  # noqa: E402

RTOL = 1e-3  # FP32 correct: max|d| / max|ref| <= RTOL on every output
CHECK_SAMPLES, CHECK_SEED = 4, 7
CALIB_SAMPLES, CALIB_SEED = 8, 1
JOB_TIMEOUT, CLI_TIMEOUT = 900.0, 900.0
INT8_OPTIONS = "--quantize_full_type int8"
NA = "—"


# ---------------------------------------------------------------------------------------------------------------
# The independent check: ONNX Runtime vs a .tflite in LiteRT


def onnx_reference(path: Path, samples: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Per sample, ONNX Runtime's outputs by name."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    count = len(next(iter(samples.values())))
    return [dict(zip(names, session.run(None, {k: v[i] for k, v in samples.items()}))) for i in range(count)]


def channel_last(rank: int) -> list[int]:
    return [0, *range(2, rank), 1]


def channel_first(rank: int) -> list[int]:
    return [0, rank - 1, *range(1, rank - 1)]


class TfliteModel:
    """A .tflite behind one call: by signature runner if it has one, else by input/output details.

    LiteRT's default kernels (XNNPACK) first, as devices run it; a model XNNPACK refuses is run with the builtin
    kernels instead, as the farm verifies it, and `kernels` says so (else its check would fail for a model that is
    right)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kernels = "XNNPACK"
        self._load(builtin=False)

    def _load(self, builtin: bool) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin else OpResolverType.AUTO
        self.interpreter = Interpreter(model_path=str(self.path), experimental_op_resolver_type=resolver)
        self.runner = self.interpreter.get_signature_runner() if self.interpreter.get_signature_list() else None
        if self.runner is not None:
            self.inputs, self.outputs = self.runner.get_input_details(), self.runner.get_output_details()
        else:
            self.interpreter.allocate_tensors()
            self.inputs = {d["name"]: d for d in self.interpreter.get_input_details()}
            self.outputs = {d["name"]: d for d in self.interpreter.get_output_details()}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return self._run(feeds)
        except (RuntimeError, ValueError) as refusal:
            if self.kernels != "XNNPACK":
                raise
            self.kernels = f"builtin (XNNPACK refused: {str(refusal).splitlines()[0][:120]})"
            self._load(builtin=True)
            return self._run(feeds)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {k: quantize(v, self.inputs[k]) for k, v in feeds.items()}
        if self.runner is not None:
            raw = self.runner(**feeds)
        else:
            for key, value in feeds.items():
                self.interpreter.set_tensor(self.inputs[key]["index"], value)
            self.interpreter.invoke()
            raw = {k: self.interpreter.get_tensor(d["index"]) for k, d in self.outputs.items()}
        return {k: dequantize(v, self.outputs[k]) for k, v in raw.items()}


def quantize(value: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail.get("quantization", (0.0, 0))
    if dtype.kind in "iu" and scale and np.asarray(value).dtype.kind == "f":
        info = np.iinfo(dtype)
        return np.clip(np.round(value / scale + zero), info.min, info.max).astype(dtype)
    return np.asarray(value).astype(dtype)


def dequantize(value: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.asarray(value).dtype.kind in "iu" and scale:
        return (value.astype(np.float32) - zero) * scale
    return np.asarray(value)


def metrics(got: list[np.ndarray], ref: list[np.ndarray]) -> dict[str, float]:
    g = np.concatenate([np.asarray(x, np.float64).ravel() for x in got])
    r = np.concatenate([np.asarray(x, np.float64).ravel() for x in ref])
    finite = np.isfinite(g).all()
    denom = float(np.abs(r).max()) or 1.0
    rel = float(np.abs(g - r).max() / denom) if finite else float("inf")
    norm = float(np.linalg.norm(g) * np.linalg.norm(r))
    cosine = float(g @ r / norm) if finite and norm else (1.0 if finite and not np.abs(g - r).max() else 0.0)
    return {"relative_error": rel, "cosine": cosine}


def check_farm(tflite: Path, result: dict, samples: dict[str, np.ndarray],
               reference: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """The farm's target in LiteRT against ONNX Runtime, mapped with the job's recorded target I/O."""
    model = TfliteModel(tflite)

    def key_for(info: dict, details: dict) -> str:
        for key, d in details.items():
            if d["name"] == info.get("name"):
                return key
        source = info.get("source_name") or info.get("name")
        if source in details:
            return source
        raise LookupError(f"target tensor {info.get('name')!r} ({source!r}) is not in the model "
                          f"(has {sorted(details)})")

    in_map = []  # (key, source name, permutation or None)
    for info in result.get("target_inputs") or []:
        source = info.get("source_name") or info["name"]
        shape = list(samples[source].shape[1:])
        in_map.append((key_for(info, model.inputs), source, layout_perm(info, shape)))
    out_map = []
    for info in result.get("target_outputs") or []:
        source = info.get("source_name") or info["name"]
        shape = list(reference[0][source].shape)
        perm = layout_perm(info, shape)
        out_map.append((key_for(info, model.outputs), source, None if perm is None else channel_first(len(shape))))
    if not out_map:
        raise LookupError("the job's result records no target_outputs")
    per_output: dict[str, tuple[list, list]] = {source: ([], []) for _, source, _ in out_map}
    for i, ref in enumerate(reference):
        feeds = {key: (samples[src][i] if p is None else samples[src][i].transpose(p)) for key, src, p in in_map}
        got = model.run(feeds)
        for key, source, perm in out_map:
            value = got[key] if perm is None else got[key].transpose(perm)
            if value.shape != ref[source].shape:
                raise ValueError(f"output {source}: target gives {value.shape}, ONNX {ref[source].shape}")
            per_output[source][0].append(value)
            per_output[source][1].append(ref[source])
    outputs = {s: metrics(g, r) for s, (g, r) in per_output.items()}
    missing = sorted(set(reference[0]) - set(outputs))
    return {"outputs": outputs, "missing": missing, "kernels": model.kernels}


def layout_perm(info: dict, source_shape: list[int]) -> list[int] | None:
    """The permutation from the source layout to the target tensor's, from the recorded layout, else by shape."""
    rank, target = len(source_shape), [int(s) for s in info.get("shape") or []]
    if rank < 3:
        return None
    if info.get("layout") == "NHWC":
        return channel_last(rank)
    if info.get("layout") == "NCHW" or target == source_shape:
        return None
    swapped = [source_shape[p] for p in channel_last(rank)]
    return channel_last(rank) if target == swapped else None


def check_cli(tflite: Path, samples: dict[str, np.ndarray], reference: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """The CLI's .tflite against ONNX Runtime: signature keys are the ONNX names; layouts are found by trying."""
    model = TfliteModel(tflite)
    notes = []
    in_keys = match_names({k: v.shape[1:] for k, v in samples.items()}, model.inputs, notes, "inputs")
    out_keys = match_names({k: v.shape for k, v in reference[0].items()}, model.outputs, notes, "outputs")
    in_perm = {}
    for source, key in in_keys.items():
        shape = list(samples[source].shape[1:])
        target = [int(s) for s in model.inputs[key]["shape"]]
        if target == shape:
            in_perm[source] = None
        elif len(shape) >= 3 and target == [shape[p] for p in channel_last(len(shape))]:
            in_perm[source] = channel_last(len(shape))
            notes.append(f"input {source} transposed to channel-last")
        else:
            raise ValueError(f"input {source}: the CLI's model takes {target}, ONNX {shape}")
    runs = []
    for i in range(len(reference)):
        feeds = {key: samples[s][i] if in_perm[s] is None else samples[s][i].transpose(in_perm[s])
                 for s, key in in_keys.items()}
        runs.append(model.run(feeds))
    outputs = {}
    for source, key in out_keys.items():
        refs = [ref[source] for ref in reference]
        rank = refs[0].ndim
        candidates = [("as is", [r[key] for r in runs])]
        if rank >= 3:
            candidates.append(("transposed", [r[key].transpose(channel_first(rank)) for r in runs]))
        scored = [(metrics(g, refs), how) for how, g in candidates if g[0].shape == refs[0].shape]
        if not scored:
            raise ValueError(f"output {source}: the CLI's model gives {runs[0][key].shape}, ONNX {refs[0].shape}")
        best, how = min(scored, key=lambda s: s[0]["relative_error"])
        if how == "transposed":
            notes.append(f"output {source} transposed back from channel-last")
        outputs[source] = best
    return {"outputs": outputs, "missing": sorted(set(reference[0]) - set(outputs)), "notes": notes,
            "kernels": model.kernels}


def match_names(sources: dict[str, tuple], details: dict[str, dict], notes: list[str], what: str) -> dict[str, str]:
    """Source name → the CLI model's key: by name; else by a shape only one key has (as is or channel-last); else
    by order. What was not by name is noted."""
    keys = list(details)
    clean = {k.replace(":", "_").replace("/", "_"): k for k in keys}
    found = {s: s if s in keys else clean.get(s.replace(":", "_").replace("/", "_")) for s in sources}
    if all(found.values()):
        return found  # type: ignore[return-value]
    if len(keys) != len(sources):
        raise LookupError(f"{what}: names do not match ({keys} vs {list(sources)})")

    def fits(shape: tuple, key: str) -> bool:
        target = [int(d) for d in details[key]["shape"]]
        return target == list(shape) or (len(shape) >= 3 and target == [shape[p] for p in channel_last(len(shape))])

    by_shape = {s: [k for k in keys if fits(shape, k)] for s, shape in sources.items()}
    if all(len(c) == 1 for c in by_shape.values()) and len({c[0] for c in by_shape.values()}) == len(keys):
        notes.append(f"{what}: names do not match ({keys} vs {list(sources)}); matched by shape")
        return {s: c[0] for s, c in by_shape.items()}
    notes.append(f"{what}: names do not match ({keys} vs {list(sources)}); matched by order")
    return dict(zip(sources, keys))


def fp32_correct(check: dict | None) -> bool | None:
    if not check or "outputs" not in check:
        return None if not check else False
    return not check["missing"] and all(m["relative_error"] <= RTOL for m in check["outputs"].values())


def worst(check: dict | None, key: str) -> float | None:
    if not check or not check.get("outputs"):
        return None
    values = [m[key] for m in check["outputs"].values()]
    return max(values) if key == "relative_error" else min(values)


# ---------------------------------------------------------------------------------------------------------------
# The farm side


def compile_on_farm(client, ef, entry: CorpusModel, onnx: Path, workdir: Path, samples, reference,
                    int8: bool) -> dict[str, Any]:
    row: dict[str, Any] = {}
    specs = {n: (list(shape), dtype) for n, (shape, dtype) in entry.inputs.items()} if entry.dynamic_batch else None
    calibration = None
    if int8:
        calib = entry.sample_inputs(CALIB_SAMPLES, seed=CALIB_SEED)
        calibration = {name: [value[i] for i in range(len(value))] for name, value in calib.items()}
    started = time.perf_counter()
    try:
        job = client.jobs.submit_compile(onnx, None, name=f"corpus {entry.name} "
                                         f"{'int8' if int8 else 'fp32'}", options=INT8_OPTIONS if int8 else "",
                                         input_specs=specs, calibration_data=calibration)
        try:
            status = job.wait(timeout=JOB_TIMEOUT)
        except TimeoutError:
            job.cancel()
            row.update(state="TIMEOUT", failure_reason=f"not finished after {JOB_TIMEOUT:.0f} s; cancelled")
            return row
    except Exception as error:  # a refused submit is a result too
        row.update(state="SUBMIT_ERROR", failure_reason=f"{type(error).__name__}: {error}")
        return row
    row["seconds"] = round(time.perf_counter() - started, 2)
    data = job.data
    result = data.result or {}
    verification = result.get("verification") or {}
    row.update(state=status.code.value, failure_reason=data.failure_reason, job_id=job.id,
               strategy=result.get("strategy"), converter_seconds=result.get("seconds"),
               verdict=verification.get("verdict"), verification_outputs=verification.get("outputs"),
               attempts=result.get("attempts"))
    if status.success:
        try:
            target = job.download_target_model(workdir / f"farm_{'int8' if int8 else 'fp32'}.tflite")
            row["check"] = check_farm(target, result, samples, reference)
        except Exception as error:
            row["check"] = {"error": f"{type(error).__name__}: {error}"}
    return row


def farm_alive(farm) -> str | None:
    """None while every farm process runs, else which one died (in-progress edits can crash it)."""
    for process in farm.processes:
        if process.popen.poll() is not None:
            return f"{process.name} exited with {process.popen.returncode}:\n{process.tail(15)}"
    return None


# ---------------------------------------------------------------------------------------------------------------
# The peer: the onnx2tf command line


def run_cli(entry: CorpusModel, onnx: Path, workdir: Path, samples, reference, int8: bool) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    model = Path(shutil.copyfile(onnx, workdir / onnx.name))  # the CLI saves its simplified model over its input
    # onnx2tf 1.x downloads this file for models with one 4-D 3-channel input unless it is in its cwd.
    np.save(workdir / ONNX2TF_SAMPLE_FILE,
            np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    bin_dir = Path(sys.executable).parent  # the CLI shells out to onnxsim, installed beside it
    command = [str(bin_dir / "onnx2tf"), "-i", str(model), "-o", str(workdir / "out"), "-n"]
    if entry.dynamic_batch:
        command += ["-b", "1"]
    if int8:
        command.append("-oiqt")
        calib = entry.sample_inputs(CALIB_SAMPLES, seed=CALIB_SEED)
        for name, value in calib.items():
            value = value.reshape(-1, *value.shape[2:])  # (N, *shape without the batch of 1)
            if value.ndim >= 3:
                value = value.transpose(channel_last(value.ndim))  # onnx2tf wants calibration data channel-last
            np.save(workdir / f"calib_{name}.npy", value)
            scalar = "[" * (value.ndim - 1) + "0.0" + "]" * (value.ndim - 1)
            one = scalar.replace("0.0", "1.0")
            command += ["-cind", name, str(workdir / f"calib_{name}.npy"), scalar, one]
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=False,
                                   timeout=CLI_TIMEOUT)
        code, output = completed.returncode, completed.stdout + completed.stderr
    except subprocess.TimeoutExpired:
        code, output = "timeout", f"not finished after {CLI_TIMEOUT:.0f} s"
    row: dict[str, Any] = {"seconds": round(time.perf_counter() - started, 2), "exit": code}
    pattern = "*_full_integer_quant.tflite" if int8 else "*_float32.tflite"
    produced = sorted((workdir / "out").glob(pattern))
    row["converted"] = bool(produced) and code == 0
    if not produced:
        row["error"] = first_error(output)
        return row
    try:
        row["check"] = check_cli(produced[0], samples, reference)
    except Exception as error:
        row["check"] = {"error": f"{type(error).__name__}: {error}"}
    return row


def first_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if "ERROR" in line or "Error" in line:
            return line[:300]
    return (lines[-1] if lines else "no output")[:300]


# ---------------------------------------------------------------------------------------------------------------
# Report


def fmt(value, spec: str = "") -> str:
    return NA if value is None else format(value, spec)


def farm_cell(row: dict | None) -> str:
    if not row:
        return NA
    if row.get("skipped"):
        return f"n/a ({row['skipped']})"
    parts = [row.get("state") or NA, row.get("verdict") or NA]
    if row.get("strategy"):
        parts.append(row["strategy"])
    parts.append(f"{fmt(row.get('seconds'), '.1f')} s")
    return " / ".join(parts)


def check_cell(row: dict | None, int8: bool) -> str:
    check = (row or {}).get("check")
    if not check:
        return NA
    if "error" in check:
        return "check failed"
    builtin = "" if check.get("kernels", "XNNPACK") == "XNNPACK" else ", builtin kernels"
    if int8:
        return f"cos {fmt(worst(check, 'cosine'), '.4f')}{builtin}"
    return f"{'correct' if fp32_correct(check) else 'WRONG'} ({fmt(worst(check, 'relative_error'), '.1e')}{builtin})"


def cli_cell(row: dict | None, int8: bool) -> str:
    if not row:
        return NA
    if row.get("skipped"):
        return f"n/a ({row['skipped']})"
    if not row.get("converted"):
        return f"no ({fmt(row.get('seconds'), '.0f')} s)"
    return f"yes / {check_cell(row, int8)} / {fmt(row.get('seconds'), '.1f')} s"


def table(rows: list[dict]) -> str:
    lines = ["| model | FP32 farm: state / verdict / strategy / s | FP32 farm, our check | "
             "CLI FP32: converted / correct / s | INT8 farm: state / verdict / s | INT8 farm, our check | "
             "CLI INT8 |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(" | ".join([
            f"| {r['name']}", farm_cell(r.get("farm_fp32")), check_cell(r.get("farm_fp32"), False),
            cli_cell(r.get("cli_fp32"), False), farm_cell(r.get("farm_int8")), check_cell(r.get("farm_int8"), True),
            cli_cell(r.get("cli_int8"), True)]) + " |")
    return "\n".join(lines)


def success(row: dict | None) -> bool:
    return bool(row) and row.get("state") == "SUCCESS"


def summary(rows: list[dict], meta: dict) -> str:
    fp32_verified = [r for r in rows if success(r.get("farm_fp32")) and r["farm_fp32"].get("verdict") == "verified"]
    int8_rows = [r for r in rows if r.get("farm_int8") and not r["farm_int8"].get("skipped")]
    int8_verified = [r for r in int8_rows
                     if success(r["farm_int8"]) and r["farm_int8"].get("verdict") in ("verified", "warning")]
    wrong = [r["name"] for r in rows if success(r.get("farm_fp32")) and not fp32_correct(r["farm_fp32"].get("check"))]
    cli_rows = [r for r in rows if r.get("cli_fp32") and not r["cli_fp32"].get("skipped")]
    cli_correct = [r for r in cli_rows if fp32_correct(r["cli_fp32"].get("check"))]
    cli_only = [r["name"] for r in cli_correct
                if not (success(r.get("farm_fp32")) and fp32_correct(r["farm_fp32"].get("check")))]
    farm_s = [r["farm_fp32"]["seconds"] for r in rows if success(r.get("farm_fp32"))]
    cli_s = [r["cli_fp32"]["seconds"] for r in cli_rows if r["cli_fp32"].get("converted")]
    low_cos = [r["name"] for r in int8_rows if success(r["farm_int8"])
               and (worst(r["farm_int8"].get("check"), "cosine") or 0) < 0.95]
    pct = lambda part, whole: f"{len(part)}/{len(whole)} ({100 * len(part) / max(1, len(whole)):.0f} %)"  # noqa: E731
    lines = [
        f"- FP32 farm verified (SUCCESS, verdict verified): {pct(fp32_verified, rows)} of the corpus (target ≥ 95 %)",
        f"- INT8 farm verified (SUCCESS, verdict verified or warning): {pct(int8_verified, int8_rows)} of the "
        f"{len(int8_rows)} models with float inputs (target ≥ 90 %)",
        f"- FP32 SUCCESS but wrong by our check: {len(wrong)} (target 0){': ' + ', '.join(wrong) if wrong else ''}",
        f"- onnx2tf CLI FP32 correct: {pct(cli_correct, cli_rows)}",
        f"- CLI correct but the farm failed or was wrong: {len(cli_only)} (target 0)"
        f"{': ' + ', '.join(cli_only) if cli_only else ''}",
        f"- INT8 farm SUCCESS with lowest cosine < 0.95: {len(low_cos)}{': ' + ', '.join(low_cos) if low_cos else ''}",
    ]
    if farm_s and cli_s:
        fm, cm = statistics.median(farm_s), statistics.median(cli_s)
        lines.append(f"- median FP32 seconds: farm {fm:.1f} s (submit → finished, {len(farm_s)} jobs) vs CLI "
                     f"{cm:.1f} s ({len(cli_s)} runs): ratio **{fm / cm:.2f}** (target ≤ 0.5)")
    elif farm_s:
        lines.append(f"- median FP32 seconds: farm {statistics.median(farm_s):.1f} s")
    minutes = fmt(meta["wall_s"] / 60 if "wall_s" in meta else None, ".1f")
    lines.append(f"- run: {len(rows)} models in {minutes} min; load average at the end "
                 f"{meta.get('loadavg', NA)}; CPU seconds of the process tree {fmt(meta.get('cpu_s'), '.0f')}"
                 f"{'; farm restarts: ' + str(meta['farm_restarts']) if meta.get('farm_restarts') else ''}")
    return "\n".join(lines)


def write_section(path: Path, text: str, section: str) -> None:
    """Between `<!-- SECTION:begin -->` and `<!-- SECTION:end -->`: a run of part of the corpus (--only) can
    have a section of its own beside the full run's."""
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    document = path.read_text() if path.exists() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in document and end in document:
        head, rest = document.split(begin, 1)
        document = head + block + rest.split(end, 1)[1]
    else:
        document = document.rstrip("\n") + "\n\n## Corpus: farm vs the onnx2tf command line\n\n" + block + "\n"
    path.write_text(document)


def process_tree_cpu() -> float | None:
    """CPU seconds of this process, its waited-for children (CLI runs) and its live ones (the farm)."""
    try:
        import psutil
    except ImportError:
        return None
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in psutil.Process().children(recursive=True):
        try:
            c = child.cpu_times()
            total += c.user + c.system + c.children_user + c.children_system
        except psutil.Error:
            pass
    return total


# ---------------------------------------------------------------------------------------------------------------


def run_model(entry: CorpusModel, root: Path, client, ef, args) -> dict[str, Any]:
    row: dict[str, Any] = {"name": entry.name, "family": entry.family, "opset": entry.opset,
                           "dynamic_batch": entry.dynamic_batch}
    workdir = root / entry.name
    onnx = entry.export(workdir / f"{entry.name}.onnx")
    samples = entry.sample_inputs(CHECK_SAMPLES, seed=CHECK_SEED)
    reference = onnx_reference(onnx, samples)
    no_int8 = "integer inputs" if entry.has_integer_inputs else ("--skip-int8" if args.skip_int8 else None)
    row["farm_fp32"] = compile_on_farm(client, ef, entry, onnx, workdir, samples, reference, int8=False)
    if no_int8:
        row["farm_int8"] = {"skipped": no_int8}
    else:
        row["farm_int8"] = compile_on_farm(client, ef, entry, onnx, workdir, samples, reference, int8=True)
    if args.skip_cli:
        row["cli_fp32"] = row["cli_int8"] = {"skipped": "--skip-cli"}
    else:
        row["cli_fp32"] = run_cli(entry, onnx, workdir / "cli_fp32", samples, reference, int8=False)
        row["cli_int8"] = ({"skipped": no_int8} if no_int8
                           else run_cli(entry, onnx, workdir / "cli_int8", samples, reference, int8=True))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated corpus names (default: all)")
    parser.add_argument("--skip-cli", action="store_true", help="do not run the onnx2tf command line")
    parser.add_argument("--skip-int8", action="store_true", help="FP32 only")
    parser.add_argument("--out", type=Path, help="rewrite the corpus section of this markdown file")
    parser.add_argument("--json", type=Path, help="dump the raw rows here")
    parser.add_argument("--from-json", type=Path, help="render the rows a run dumped with --json; run nothing")
    parser.add_argument("--section", default="corpus", help="the marker name of the section --out rewrites")
    args = parser.parse_args()
    if args.from_json:
        recorded = json.loads(args.from_json.read_text())
        report(recorded["rows"], recorded["meta"], args.out, args.section)
        return
    models = [by_name(n.strip()) for n in args.only.split(",") if n.strip()] if args.only else CORPUS

    import edgefarm as ef
    from edgefarm.farm import LocalFarm

    rows: list[dict] = []
    command = [".venv/bin/python bench/corpus.py", f"--only {args.only}" if args.only else "",
               "--out docs/benchmarks.md", f"--section {args.section}" if args.section != "corpus" else ""]
    meta: dict[str, Any] = {"models": len(models), "farm_restarts": 0, "date": date.today().isoformat(),
                            "command": " ".join(part for part in command if part)}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgefarm-corpus-") as tmp:
        root = Path(tmp)

        def start_farm():
            farm = LocalFarm(data_dir=root / f"farm{meta['farm_restarts']}", port=free_port(), agent=False)
            token = farm.start()  # the worker imports the converter stack at start, as a running farm has
            return farm, ef.Client(api_url=farm.url, api_token=token)

        farm, client = start_farm()
        try:
            for number, entry in enumerate(models, 1):
                t0 = time.perf_counter()
                for attempt in (1, 2):  # a farm that died under the model gets restarted and one more go
                    try:
                        row = run_model(entry, root, client, ef, args)
                    except Exception as error:
                        row = {"name": entry.name, "error": f"{type(error).__name__}: {error}",
                               "trace": traceback.format_exc()[-2000:]}
                    died = farm_alive(farm)
                    if not died:
                        break
                    print(f"  farm crashed during {entry.name} (attempt {attempt}): {died}", file=sys.stderr)
                    meta.setdefault("farm_crashes", []).append({"model": entry.name, "what": died})
                    farm.stop()
                    meta["farm_restarts"] += 1
                    farm, client = start_farm()
                    row["farm_crash"] = died
                rows.append(row)
                print(f"[{number}/{len(models)}] {entry.name}: {time.perf_counter() - t0:.0f} s | FP32 farm "
                      f"{farm_cell(row.get('farm_fp32'))} {check_cell(row.get('farm_fp32'), False)} | CLI "
                      f"{cli_cell(row.get('cli_fp32'), False)} | INT8 farm {farm_cell(row.get('farm_int8'))} "
                      f"{check_cell(row.get('farm_int8'), True)}{' | ERROR ' + row['error'] if 'error' in row else ''}",
                      flush=True)
                if args.json:  # after every model, so a long run can be read while it goes
                    args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
            meta["cpu_s"] = process_tree_cpu()
        finally:
            farm.stop()
    meta["wall_s"] = time.perf_counter() - started
    meta["loadavg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
    report(rows, meta, args.out, args.section)


def report(rows: list[dict], meta: dict, out: Path | None, section: str) -> None:
    """Print the table and the totals; with `out`, rewrite that file's section with them."""
    ran = f"{len(rows)} models" if len(rows) == meta["models"] else f"the first {len(rows)} of {meta['models']} models"
    command = meta.get("command", ".venv/bin/python bench/corpus.py --out docs/benchmarks.md")
    which = "part of `make bench`" if section == "corpus" else "part of the corpus"
    text = (f"Run {meta['date']}: `{command}` ({which}), "
            f"{ran} of bench/corpus_models.py, one farm (one worker), checks on {CHECK_SAMPLES} seeded inputs, FP32 "
            f"correct when max|d|/max|ref| ≤ {RTOL:g}.\n\n" + table(rows) + "\n\n" + summary(rows, meta))
    print("\n" + text)
    if out:
        write_section(out, text, section)


if __name__ == "__main__":
    main()
