"""Converter-stack benchmark: which ONNX -> TFLite stack should the compile workers run?

    python bench/stacks.py --onnx-dir DIR [--json out.json] [--candidates a,b,c,a8,b8,c8] [--models m1,m2]
                           [--timeout 300] [--workdir DIR] [--resume]

For every `DIR/*.onnx` and every candidate stack it runs the converter's command line in its own subprocess, in its
own working directory, with a timeout, and measures:

- converted: the expected `.tflite` exists and the command exited 0 (else the first useful line of its error);
- verified (FP32 candidates): the TFLite float32 model's outputs against ONNX Runtime's on the same seeded inputs,
  relative error max|d| / max|ref| <= 1e-3 for every output (outputs matched by name, else by order/shape; inputs and
  outputs transposed NCHW <-> NHWC where the converter changed the layout, and the record says so);
- INT8 candidates: whether `*_full_integer_quant.tflite` (int8 I/O) came out, plus its dequantized relative error
  against ONNX Runtime (informative only: random weights and random calibration data, no pass/fail);
- wall seconds and the child's peak RSS (os.wait4's ru_maxrss: the child and the descendants it waited for).

Candidates (their interpreters are flags, so nothing here imports a converter):

    a   onnx2tf 1.29.x CLI, TensorFlow backend        (--venv1, default .venv: the current worker stack, Python 3.11)
    b   onnx2tf 2.x CLI, default backend flatbuffer_direct, no TensorFlow installed    (--venv2, .venv-onnx2tf2)
    c   onnx2tf 2.x CLI, --tflite_backend tf_converter, onnx2tf[tensorflow]            (--venv2tf)
    a8, b8, c8   the same stacks with full-integer quantization: -oiqt -cind NAME calib.npy MEAN STD per input

Offline: onnx2tf 1.x downloads `calibration_image_sample_data_20x128x128x3_float32.npy` when a model has only 4-D
3-channel inputs (and for -oiqt without -cind) unless that file is in the working directory, so each working
directory gets one (seeded uniform [0, 1), shape (20, 128, 128, 3)). onnx2tf 2.x has no download code.

Seeded inputs: `DIR/NAME.inputs.json` (written by the corpus exporter: {"inputs": {name: {"shape", "dtype",
"range"}}}) gives shapes as compiled (dynamic batch -> the fixed shape there) and value ranges; without it the ONNX
graph's shapes are used with symbolic dimensions set to 1, floats N(0, 1), integers in [0, 2).

The script itself needs only the standard library; `_verify` (run in a subprocess with the candidate's own
interpreter) needs numpy, onnxruntime and ai_edge_litert (or tensorflow.lite).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
SAMPLE_NAME = "calibration_image_sample_data_20x128x128x3_float32.npy"
REL_TOL = 1e-3
CALIB_SAMPLES = 10

CANDIDATES = {
    # name: (venv flag, backend args, int8)
    "a": ("venv1", [], False),
    "b": ("venv2", [], False),
    "c": ("venv2tf", ["-tb", "tf_converter"], False),
    "a8": ("venv1", [], True),
    "b8": ("venv2", [], True),
    "c8": ("venv2tf", ["-tb", "tf_converter"], True),
}
DESCRIPTIONS = {
    "a": "onnx2tf 1.29 CLI (TF converter)",
    "b": "onnx2tf 2.x flatbuffer_direct",
    "c": "onnx2tf 2.x tf_converter",
    "a8": "onnx2tf 1.29 -oiqt -cind",
    "b8": "onnx2tf 2.x flatbuffer_direct -oiqt -cind",
    "c8": "onnx2tf 2.x tf_converter -oiqt -cind",
}

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# ---------------------------------------------------------------------------------------------------------------
# Child processes


def run_child(cmd: list[str], cwd: Path, timeout: float, log: Path, nice: int = 0) -> dict:
    """Run `cmd` in `cwd` in its own session; kill the whole group on timeout. Returns rc, seconds, peak RSS."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True,
                                preexec_fn=(lambda: os.nice(nice)) if nice else None)
        timed_out, status, usage = False, 0, None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                timed_out = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.1)
        seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    return {"rc": proc.returncode, "timed_out": timed_out, "seconds": round(seconds, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1) if usage else None}


def error_line(log: Path) -> str:
    """The most useful line of a converter log: a traceback's exception, else the first ERROR line, else the last."""
    try:
        lines = [ANSI.sub("", s).strip() for s in log.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    noise = re.compile(r"^[WIE]\d{4} |^WARNING: All log messages|^Saved artifact|^\* Endpoint|^inputs_\d|^Output Type"
                       r"|^TensorSpec|^Captures:|^\d+: TensorSpec")
    lines = [s for s in lines if s and not noise.search(s)]
    for i, s in enumerate(lines):
        if s.startswith("Traceback"):
            for t in lines[i + 1:]:
                if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b", t):
                    return t[:300]
    for s in lines:
        if re.search(r"\bERROR\b|Error:", s):
            return s[:300]
    return lines[-1][:300] if lines else ""


# ---------------------------------------------------------------------------------------------------------------
# Input specs, seeded data (shared by the driver and _verify; numpy imported lazily)


def input_specs(onnx_path: Path) -> dict:
    """{name: {"shape": [...], "dtype": str, "range": [lo, hi] | None}} from the sidecar, else the ONNX graph."""
    side = onnx_path.with_suffix(".inputs.json")
    if side.exists():
        return json.loads(side.read_text())["inputs"]
    import onnx  # noqa: PLC0415

    model = onnx.load(str(onnx_path), load_external_data=False)
    init = {i.name for i in model.graph.initializer}
    specs = {}
    for vi in model.graph.input:
        if vi.name in init:
            continue
        t = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in t.shape.dim]
        specs[vi.name] = {"shape": shape, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                          "range": None}
    return specs


def seeded(specs: dict, count: int, seed: int) -> dict:
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    data = {}
    for name, spec in specs.items():
        shape, dtype, rng_ = (count, *spec["shape"]), np.dtype(spec["dtype"]), spec.get("range")
        if dtype.kind in "iub":
            lo, hi = rng_ or (0, 2)
            data[name] = rng.integers(int(lo), int(hi), shape).astype(dtype)
        elif rng_ is None:
            data[name] = rng.standard_normal(shape).astype(dtype)
        else:
            data[name] = rng.uniform(rng_[0], rng_[1], shape).astype(dtype)
    return data


def layout_perms(src: tuple, dst: tuple) -> list[tuple]:
    """Permutations p with src[p] == dst: identity first, then channel-last / channel-first, then the rest."""
    src, dst = tuple(src), tuple(dst)
    r = len(src)
    if r != len(dst) or sorted(src) != sorted(dst):
        return []
    ident = tuple(range(r))
    first = [ident]
    if r >= 3:
        first += [(0, *range(2, r), 1), (0, r - 1, *range(1, r - 1))]
    rest = itertools.permutations(range(r)) if r <= 6 else []
    out = []
    for p in itertools.chain(first, rest):
        if p not in out and tuple(src[i] for i in p) == dst:
            out.append(p)
    return out


def _norm(name: str) -> str:
    name = name.split(":")[0]
    for prefix in ("serving_default_",):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return re.sub(r"[^0-9a-z]", "", name.lower())


# ---------------------------------------------------------------------------------------------------------------
# _verify: run in a child with the candidate's interpreter


def verify(onnx_path: Path, tflite_path: Path, samples: int, seed: int, quantized: bool) -> dict:
    import numpy as np  # noqa: PLC0415
    import onnxruntime as ort  # noqa: PLC0415

    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        from tensorflow.lite.python.interpreter import Interpreter  # noqa: PLC0415

    specs = input_specs(onnx_path)
    data = seeded(specs, samples, seed)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    onnx_outs = [o.name for o in sess.get_outputs()]

    interp = Interpreter(model_path=str(tflite_path), num_threads=1)
    sigs = interp.get_signature_list()
    in_det, out_det = interp.get_input_details(), interp.get_output_details()
    notes = {"signature": bool(sigs)}

    # Input matching: by normalised name, else by order.
    in_map, names = {}, list(specs)
    by_name = {_norm(d["name"]): d for d in in_det}
    for i, n in enumerate(names):
        d = by_name.get(_norm(n))
        if d is None and len(in_det) == len(names):
            d = in_det[i]
            notes["inputs_by_order"] = True
        if d is None:
            return {"verified": False, "error": f"no TFLite input for ONNX input {n!r}"}
        in_map[n] = d
    in_perm_choices = []
    for n in names:
        ps = layout_perms(tuple(specs[n]["shape"]), tuple(int(x) for x in in_map[n]["shape"]))
        if not ps:
            return {"verified": False, "error": f"input {n}: ONNX shape {specs[n]['shape']} vs TFLite "
                                                f"{list(in_map[n]['shape'])}"}
        in_perm_choices.append(ps[:4])

    def q_in(x, d):
        if quantized and d["dtype"] in (np.int8, np.uint8, np.int16):
            s, z = d["quantization"]
            info = np.iinfo(d["dtype"])
            return np.clip(np.round(x / s + z), info.min, info.max).astype(d["dtype"])
        return x.astype(d["dtype"])

    def dq_out(y, d):
        if d["dtype"] in (np.int8, np.uint8, np.int16) and d["quantization"][0]:
            s, z = d["quantization"]
            return (y.astype(np.float32) - z) * s
        return y.astype(np.float32) if y.dtype.kind == "f" else y

    def run_tflite(feed):
        for n in names:
            interp.resize_tensor_input(in_map[n]["index"], feed[n].shape) if tuple(in_map[n]["shape"]) != \
                feed[n].shape else None
        interp.allocate_tensors()
        for n in names:
            interp.set_tensor(in_map[n]["index"], q_in(feed[n], in_map[n]))
        interp.invoke()
        return [(d["name"], dq_out(interp.get_tensor(d["index"]), d), d) for d in out_det]

    idx_to_sig = {}  # output names through the signature, when there is one
    if sigs:
        runner_outs = interp.get_signature_runner(next(iter(sigs))).get_output_details()
        idx_to_sig = {v["index"]: k for k, v in runner_outs.items()}

    best = None
    for combo in list(itertools.product(*in_perm_choices))[:16]:  # square inputs can be ambiguous: try a few
        worst, per_out, ok = 0.0, {}, True
        for s in range(samples):
            ref = sess.run(None, {n: data[n][s] for n in names})
            feed = {n: np.ascontiguousarray(data[n][s].transpose(p)) for n, p in zip(names, combo)}
            got = run_tflite(feed)
            used = set()
            for oname, r in zip(onnx_outs, ref):
                r = np.asarray(r)
                cands = [g for g in got if _norm(idx_to_sig.get(g[2]["index"], "")) == _norm(oname)
                         or _norm(g[0]) == _norm(oname)]
                how = "name"
                if not cands:  # no name in common: the unused output that fits best (shape, then values)
                    cands, how = [g for g in got if g[0] not in used], "shape"
                err, note = None, None
                for gname, y, _d in cands:
                    for p in layout_perms(tuple(y.shape), tuple(r.shape)) or (
                            [None] if y.size == r.size and y.squeeze().shape == r.squeeze().shape else []):
                        yy = y.reshape(r.shape) if p is None else y.transpose(p)
                        denom = float(np.max(np.abs(r.astype(np.float64)))) if r.size else 0.0
                        d = float(np.max(np.abs(yy.astype(np.float64) - r.astype(np.float64)))) if r.size else 0.0
                        e = d / denom if denom > 0 else d
                        if not np.isfinite(e):
                            e = float("inf")
                        if err is None or e < err:
                            err = e
                            note = (gname, how, "identity" if p is None or p == tuple(range(r.ndim))
                                    else f"transpose{p}", list(y.shape))
                        if err == 0:
                            break
                if err is None:
                    ok = False
                    per_out[oname] = {"error": f"no TFLite output matches shape {list(r.shape)} "
                                               f"(got {[list(g[1].shape) for g in got]})"}
                    continue
                used.add(note[0])
                prev = per_out.get(oname, {}).get("rel_err", 0.0)
                per_out[oname] = {"rel_err": max(prev, err), "tflite_output": note[0], "matched_by": note[1],
                                  "layout": note[2], "tflite_shape": note[3]}
                worst = max(worst, err)
        cand = {"rel_err": worst if ok else None, "outputs": per_out,
                "input_layout": {n: ("identity" if p == tuple(range(len(p))) else f"transpose{p}")
                                 for n, p in zip(names, combo)}}
        if best is None or (cand["rel_err"] is not None and (best["rel_err"] is None
                                                             or cand["rel_err"] < best["rel_err"])):
            best = cand
        if best["rel_err"] is not None and best["rel_err"] <= REL_TOL:
            break
    transposed = [f"in:{n}" for n, v in best["input_layout"].items() if v != "identity"] + \
                 [f"out:{n}" for n, v in best["outputs"].items() if v.get("layout", "identity") != "identity"]
    return {"verified": best["rel_err"] is not None and best["rel_err"] <= REL_TOL, "rel_err": best["rel_err"],
            "transposed": transposed, "detail": best, **notes}


# ---------------------------------------------------------------------------------------------------------------
# Driver


def calib_layout(onnx_shape: list, fp32_tflite: Path | None, python: str, name: str, workdir: Path) -> tuple:
    """The permutation from the ONNX input layout to the TFLite one, read from the stack's own FP32 model when it
    has one (so 3-D NCW -> NWC, 4-D NCHW -> NHWC, or nothing for an input onnx2tf kept), else the default rule."""
    r = len(onnx_shape)
    if fp32_tflite is not None and fp32_tflite.exists():
        probe = subprocess.run([python, str(HERE), "_shapes", str(fp32_tflite)], capture_output=True, text=True,
                               timeout=120, cwd=workdir)
        if probe.returncode == 0:
            shapes = json.loads(probe.stdout)
            dst = shapes.get(_norm(name))
            if dst is None and len(shapes) == 1:
                dst = next(iter(shapes.values()))
            if dst is not None:
                ps = layout_perms(tuple(onnx_shape), tuple(dst))
                if ps:
                    return ps[0]
    return (0, *range(2, r), 1) if r >= 3 else tuple(range(r))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx-dir", required=True, type=Path)
    ap.add_argument("--json", type=Path, help="write results here (rewritten after every run)")
    ap.add_argument("--candidates", default="a,b,c,a8,b8,c8")
    ap.add_argument("--models", default="", help="comma-separated model names (default: every *.onnx)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per conversion")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/edgefarm-stacks"))
    ap.add_argument("--venv1", type=Path, default=REPO / ".venv")
    ap.add_argument("--venv2", type=Path, default=REPO / ".venv-onnx2tf2")
    ap.add_argument("--venv2tf", type=Path, default=Path("/tmp/stacks/venv-o2tf2-tf"))
    ap.add_argument("--samples", type=int, default=2, help="seeded samples per verification")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nice", type=int, default=5)
    ap.add_argument("--resume", action="store_true", help="keep results already in --json, run the rest")
    ap.add_argument("--report-only", action="store_true", help="print the table and totals of --json, run nothing")
    args = ap.parse_args(argv)
    if args.report_only:
        results = json.loads(args.json.read_text())["results"]
        cands = [c.strip() for c in args.candidates.split(",") if c.strip()]
        print(table(results, cands))
        print()
        for c, s in summarise(results, cands).items():
            print(f"{c:4} {DESCRIPTIONS[c]:42} {json.dumps(s)}")
        return 0

    models = sorted(args.onnx_dir.glob("*.onnx"))
    if args.models:
        wanted = set(args.models.split(","))
        models = [m for m in models if m.stem in wanted]
    cands = [c.strip() for c in args.candidates.split(",") if c.strip()]
    args.workdir.mkdir(parents=True, exist_ok=True)

    results: list[dict] = []
    if args.resume and args.json and args.json.exists():
        results = json.loads(args.json.read_text())["results"]
    done = {(r["model"], r["candidate"]) for r in results}

    pythons = {}
    for key in ("venv1", "venv2", "venv2tf"):
        py = getattr(args, key) / "bin" / "python"
        pythons[key] = str(py) if py.exists() else None
    versions = {k: _versions(py) for k, py in pythons.items() if py}

    sample = args.workdir / SAMPLE_NAME
    if not sample.exists():
        py = next(p for p in pythons.values() if p)
        subprocess.run([py, "-c", "import numpy as np, sys; np.save(sys.argv[1], np.random.default_rng(0)"
                        ".random((20, 128, 128, 3), dtype=np.float32))", str(sample)], check=True)

    def save():
        if args.json:
            args.json.write_text(json.dumps({"meta": {"versions": versions, "rel_tol": REL_TOL,
                                                      "timeout": args.timeout, "samples": args.samples},
                                             "results": results, "summary": summarise(results, cands)}, indent=1))

    for onnx_path in models:
        name = onnx_path.stem
        specs = input_specs(onnx_path) if (onnx_path.with_suffix(".inputs.json")).exists() else None
        for cand in cands:
            if (name, cand) in done:
                continue
            venv_key, backend, int8 = CANDIDATES[cand]
            py = pythons[venv_key]
            rec = {"model": name, "candidate": cand, "stack": DESCRIPTIONS[cand]}
            if py is None:
                rec.update(converted=False, skipped=f"no interpreter at {getattr(args, venv_key)}")
                results.append(rec)
                save()
                continue
            cwd = args.workdir / name / cand
            shutil.rmtree(cwd, ignore_errors=True)
            cwd.mkdir(parents=True)
            os.symlink(sample, cwd / SAMPLE_NAME)
            exe = str(Path(py).parent / "onnx2tf")
            cmd = [exe, "-i", str(onnx_path.resolve()), "-o", "out", *backend, "-n"]
            if int8:
                if specs is None:
                    specs = _specs_via(py, onnx_path, cwd)
                fp32 = args.workdir / name / cand[:-1] / "out" / f"{name}_float32.tflite"
                cmd[-1:-1] = ["-oiqt"]
                calib = seeded(specs, CALIB_SAMPLES, args.seed + 1000) if _have_numpy() else None
                for i, (iname, spec) in enumerate(specs.items()):
                    perm = calib_layout(spec["shape"], fp32, py, iname, cwd)
                    path = cwd / f"calib_{i}.npy"
                    _save_calib(py, calib, iname, spec, perm, path, args.seed, cwd)
                    cmd[-1:-1] = ["-cind", iname, str(path), "[0.0]", "[1.0]"]  # data already normalised
                    rec.setdefault("calib_layout", {})[iname] = list(perm)
            rec["command"] = " ".join(_q(c) for c in cmd)
            run = run_child(cmd, cwd, args.timeout, cwd / "convert.log", args.nice)
            rec.update(run)
            target = cwd / "out" / (f"{name}_full_integer_quant.tflite" if int8 else f"{name}_float32.tflite")
            rec["converted"] = run["rc"] == 0 and target.exists()
            if int8:
                rec["int8_variants"] = sorted(p.name[len(name) + 1:-7] for p in (cwd / "out").glob("*.tflite")) \
                    if (cwd / "out").exists() else []
            if not rec["converted"]:
                rec["error"] = "timeout" if run["timed_out"] else (error_line(cwd / "convert.log")
                                                                   or f"exit {run['rc']}, no {target.name}")
            else:
                v = subprocess.run([py, str(HERE), "_verify", str(onnx_path.resolve()), str(target),
                                    str(args.samples), str(args.seed), "1" if int8 else "0"],
                                   capture_output=True, text=True, timeout=600, cwd=cwd)
                try:
                    res = json.loads(v.stdout.strip().splitlines()[-1])
                except (ValueError, IndexError):
                    tail = (v.stderr.strip().splitlines() or ["no output"])[-1]
                    res = {"verified": False, "error": f"verify crashed: {tail[:300]}"}
                if int8:
                    rec["int8_rel_err"] = res.get("rel_err")
                    rec["int8_run_error"] = res.get("error")
                else:
                    rec["verified"] = res["verified"]
                    rec["rel_err"] = res.get("rel_err")
                    rec["transposed"] = res.get("transposed", [])
                    rec["signature"] = res.get("signature")
                    if res.get("error"):
                        rec["verify_error"] = res["error"]
                    rec["verify_detail"] = res.get("detail")
            results.append(rec)
            print(_line(rec), flush=True)
            save()
    save()
    print()
    print(table(results, cands))
    print()
    for c, s in summarise(results, cands).items():
        print(f"{c:4} {DESCRIPTIONS[c]:42} {json.dumps(s)}")
    return 0


def _have_numpy() -> bool:
    try:
        import numpy  # noqa: F401, PLC0415
        return True
    except ImportError:
        return False


def _specs_via(py: str, onnx_path: Path, cwd: Path) -> dict:
    out = subprocess.run([py, str(HERE), "_specs", str(onnx_path)], capture_output=True, text=True, cwd=cwd,
                         timeout=120)
    return json.loads(out.stdout)


def _save_calib(py, calib, iname, spec, perm, path, seed, cwd) -> None:
    """Calibration samples for one input, (n, *TFLite layout), float32 (onnx2tf requires float)."""
    if calib is not None:
        import numpy as np  # noqa: PLC0415

        np.save(path, _calib_array(np, calib[iname], perm))
        return
    subprocess.run([py, str(HERE), "_calib", json.dumps({iname: spec}), iname, json.dumps(list(perm)), str(path),
                    str(seed)], check=True, cwd=cwd, timeout=120)


def _calib_array(np, a, perm):
    """(n, 1, *rest) seeded samples -> (n, *TFLite layout without the batch axis): the sample axis replaces the
    batch axis, as onnx2tf's -cind expects."""
    a = a.transpose(0, *(p + 1 for p in perm))
    return np.ascontiguousarray(a.reshape(a.shape[0], *a.shape[2:])).astype(np.float32)


def _versions(py: str) -> dict:
    code = ("import json, importlib.metadata as m, sys\nout={'python': sys.version.split()[0]}\n"
            "for p in ['onnx2tf','tensorflow','onnx','onnxruntime','numpy','protobuf','ai-edge-litert','torch']:\n"
            "    try: out[p]=m.version(p)\n    except Exception: pass\nprint(json.dumps(out))")
    try:
        return json.loads(subprocess.run([py, "-c", code], capture_output=True, text=True, timeout=60).stdout)
    except (ValueError, subprocess.SubprocessError):
        return {}


def _q(s: str) -> str:
    return s if re.fullmatch(r"[\w./:=,+-]+", s) else "'" + s.replace("'", "'\\''") + "'"


def _line(r: dict) -> str:
    state = "ok" if r.get("converted") else "FAIL"
    extra = ""
    if r.get("converted") and "verified" in r:
        extra = f"verified={r['verified']} rel_err={_fmt(r.get('rel_err'))} {','.join(r.get('transposed') or [])}"
    elif r.get("converted"):
        extra = f"int8_rel_err={_fmt(r.get('int8_rel_err'))}"
    else:
        extra = r.get("error") or r.get("skipped", "")
    return (f"{r['model']:22} {r['candidate']:3} {state:4} {r.get('seconds', 0):7.1f}s "
            f"{r.get('peak_rss_mb') or 0:7.0f}MB {extra}")


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2e}"


def summarise(results: list[dict], cands: list[str]) -> dict:
    out = {}
    for c in cands:
        rs = [r for r in results if r["candidate"] == c and "skipped" not in r]
        if not rs:
            continue
        conv = [r for r in rs if r.get("converted")]
        s = {"models": len(rs), "converted": len(conv), "converted_pct": round(100 * len(conv) / len(rs), 1),
             "median_seconds": round(statistics.median(r["seconds"] for r in rs), 2),
             "median_peak_rss_mb": round(statistics.median(r["peak_rss_mb"] or 0 for r in rs), 1),
             "total_seconds": round(sum(r["seconds"] for r in rs), 1)}
        if not CANDIDATES[c][2]:
            ver = [r for r in rs if r.get("verified")]
            s.update(verified=len(ver), verified_pct=round(100 * len(ver) / len(rs), 1),
                     needed_transpose=sum(1 for r in ver if r.get("transposed")))
        else:  # a full-integer model that LiteRT cannot run (Flex ops, bad prepare) is no success
            run = [r for r in conv if r.get("int8_rel_err") is not None]
            s.update(int8_runnable=len(run), int8_runnable_pct=round(100 * len(run) / len(rs), 1),
                     median_int8_rel_err=round(statistics.median(r["int8_rel_err"] for r in run), 4) if run else None)
        out[c] = s
    return out


def table(results: list[dict], cands: list[str]) -> str:
    models = list(dict.fromkeys(r["model"] for r in results))
    by = {(r["model"], r["candidate"]): r for r in results}
    head = f"{'model':22}" + "".join(f" | {c:^24}" for c in cands)
    lines = [head, "-" * len(head)]
    for m in models:
        cells = []
        for c in cands:
            r = by.get((m, c))
            if r is None or "skipped" in r:
                cells.append(f"{'-':^24}")
                continue
            if not r.get("converted"):
                mark = "TIMEOUT" if r.get("timed_out") else "fail"
            elif CANDIDATES[c][2]:
                mark = "int8" if r.get("int8_rel_err") is not None else "norun"
            else:
                mark = "OK" if r.get("verified") else "WRONG"
            cells.append(f"{mark:7} {r['seconds']:6.1f}s {r['peak_rss_mb'] or 0:6.0f}M")
        lines.append(f"{m:22}" + "".join(f" | {c:24}" for c in cells))
    return "\n".join(lines)


def _sub(argv: list[str]) -> int:
    cmd = argv[0]
    if cmd == "_verify":
        onnx_path, tfl, samples, seed, quant = argv[1:6]
        try:
            res = verify(Path(onnx_path), Path(tfl), int(samples), int(seed), quant == "1")
        except Exception as e:  # a model the interpreter cannot run (Flex ops, bad shapes) is a result too
            said = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            res = {"verified": False, "error": f"{type(e).__name__}: {said}"}
        print(json.dumps(res, default=str))
        return 0
    if cmd == "_shapes":
        try:
            from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415
        except ImportError:  # pragma: no cover
            from tensorflow.lite.python.interpreter import Interpreter  # noqa: PLC0415
        it = Interpreter(model_path=argv[1])
        print(json.dumps({_norm(d["name"]): [int(x) for x in d["shape"]] for d in it.get_input_details()}))
        return 0
    if cmd == "_specs":
        print(json.dumps(input_specs(Path(argv[1]))))
        return 0
    if cmd == "_calib":
        import numpy as np  # noqa: PLC0415

        specs, iname, perm, path, seed = json.loads(argv[1]), argv[2], json.loads(argv[3]), argv[4], int(argv[5])
        np.save(path, _calib_array(np, seeded(specs, CALIB_SAMPLES, seed + 1000)[iname], perm))
        return 0
    raise SystemExit(f"unknown subcommand {cmd}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        sys.exit(_sub(sys.argv[1:]))
    sys.exit(main())
