"""TFLite / LiteRT `benchmark_model` output, read into numbers (times in µs, memory in bytes).

The tool's output has changed over the years and reaches us in several wrappings, all handled here:

- older:  `Average inference timings in us: Warmup: 27917.4, Init: 21528106, no stats: 23313.5`
- newer:  `Inference timings in us: Init: 126059, First inference: 32942, Warmup (avg): 12581.9,
  Inference (avg): 12167.6` (one line)
- an `INFO: ` prefix, or an Android logcat prefix (`05-30 15:16:44.857  3380  3380 I tflite  : `);
- numbers in scientific notation (`Inference (avg): 1.21676e+06`);
- per-run statistics `count=… first=… curr=… min=… max=… avg=… std=…` (warm-up first, then the timed runs;
  newer builds may add more `key=value` pairs, such as percentiles, which are kept);
- memory: `Memory footprint delta from the start of the tool (MB): init=… overall=…` and
  `Overall peak memory footprint (MB) via periodic monitoring: …` (MB is the tool's MiB: KiB / 1024);
- delegation: `Replacing N out of M node(s) with delegate (NAME) node, yielding K partitions` and the
  `Explicitly applied … delegate, and the model graph will be completely/partially executed …` /
  `… will not be executed by the delegate` sentences;
- `--enable_op_profiling`: the `Run Order` table after `Operator-wise Profiling Info for Regular Benchmark Runs`
  (columns read from its header, so a build without `[start]` parses too).

Nothing here guesses: a value the output does not contain stays None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MIB = 1024 * 1024
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# `INFO: `, `I tflite  : ` after a logcat time stamp, `tflite: `… anything before the tool's own words.
_LOGCAT = re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEF]\s+[^:]*:\s?")
_LEVEL = re.compile(r"^(?:INFO|WARNING|VERBOSE): ")
_NEW_TIMINGS = re.compile(r"Inference timings in us: (.*)")
_OLD_TIMINGS = re.compile(r"Average inference timings in us: (.*)")
_KEY_VALUE = re.compile(rf"([A-Za-z][A-Za-z ()]*?): ({NUMBER})")
_STAT_PAIR = re.compile(rf"(\w+)=({NUMBER})")
_MEMORY_DELTA = re.compile(rf"Memory footprint delta from the start of the tool \(MB\): init=({NUMBER}) "
                           rf"overall=({NUMBER})")
_PEAK_MEMORY = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({NUMBER})")
_REPLACING = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \((.+?)\) node, "
                        r"yielding (\d+) partition")
_EXPLICIT = re.compile(r"Explicitly applied (.+?) delegate, and the model graph will be (completely|partially) "
                       r"executed by the delegate")
_NOT_EXECUTED = re.compile(r"Though (.+?) delegate is explicitly applied, the model graph will not be executed")
_INIT_SESSION = re.compile(rf"Initialized session in ({NUMBER})\s*ms")
_OP_SECTION = "Operator-wise Profiling Info for Regular Benchmark Runs"
_HEADER_COLUMN = re.compile(r"\[([^\]]+)\]")
_ERROR = re.compile(r"^(?:ERROR|Error)\b|\b[Ff]ailed\b|could not|Aborted|Segmentation fault")


@dataclass(frozen=True)
class RunStats:
    """One `count=… first=… …` line, µs. `extra` holds any further pairs a newer build prints."""

    count: int
    first: float | None = None
    curr: float | None = None
    min: float | None = None
    max: float | None = None
    avg: float | None = None
    std: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Delegation:
    delegate: str  # as the tool names it: TfLiteXNNPackDelegate, TfLiteGpuDelegateV2, QnnDelegate…
    replaced: int
    total: int
    partitions: int


@dataclass(frozen=True)
class OpTiming:
    """One row of the regular runs' Run Order table (times in µs, memory in bytes)."""

    node_type: str
    name: str
    avg_us: float
    first_us: float | None = None
    start_us: float | None = None
    percent: float | None = None
    cdf_percent: float | None = None
    memory_bytes: int | None = None
    times_called: int | None = None


@dataclass
class BenchmarkOutput:
    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    warmup: RunStats | None = None  # the first `count=` line
    inference: RunStats | None = None  # the last one: the timed runs
    init_memory_bytes: int | None = None
    overall_memory_bytes: int | None = None
    peak_memory_bytes: int | None = None
    delegations: list[Delegation] = field(default_factory=list)
    explicit_delegation: dict[str, str] = field(default_factory=dict)  # "GPU" → complete | partial | none
    ops: list[OpTiming] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def has_timings(self) -> bool:
        return self.inference_avg_us is not None or self.inference is not None


def strip_prefix(line: str) -> str:
    line = _LOGCAT.sub("", line.rstrip("\r\n"))
    return _LEVEL.sub("", line)


def parse_benchmark_output(text: str) -> BenchmarkOutput:
    result = BenchmarkOutput()
    lines = [strip_prefix(line) for line in text.splitlines()]
    stats: list[RunStats] = []
    in_op_section = False
    header: list[str] | None = None
    for line in lines:
        stripped = line.strip()
        if in_op_section:
            if header is None:
                if "[node type]" in stripped.lower():
                    header = [c.strip().lower() for c in _HEADER_COLUMN.findall(stripped)]
                continue
            if not stripped or stripped.startswith("="):
                in_op_section = False  # the table ends; `Top by Computation Time` repeats the same rows
                continue
            op = _op_row(stripped, header)
            if op is not None:
                result.ops.append(op)
            continue
        if stripped.startswith(_OP_SECTION):
            in_op_section, header, result.ops = True, None, []
            continue
        if stripped.startswith("count="):
            stats.append(_run_stats(stripped))
        elif match := _NEW_TIMINGS.search(stripped):
            values = _key_values(match.group(1))
            result.init_us = values.get("init", result.init_us)
            result.first_inference_us = values.get("first inference")
            result.warmup_avg_us = values.get("warmup (avg)")
            result.inference_avg_us = values.get("inference (avg)")
        elif match := _OLD_TIMINGS.search(stripped):
            values = _key_values(match.group(1))
            result.init_us = values.get("init", result.init_us)
            result.warmup_avg_us = values.get("warmup")
            # builds without stats print `no stats: …` where the timed runs' average goes
            result.inference_avg_us = values.get("inference", values.get("no stats"))
        elif match := _INIT_SESSION.search(stripped):
            result.init_us = result.init_us if result.init_us is not None else float(match.group(1)) * 1000
        elif match := _MEMORY_DELTA.search(stripped):
            result.init_memory_bytes = round(float(match.group(1)) * MIB)
            result.overall_memory_bytes = round(float(match.group(2)) * MIB)
        elif match := _PEAK_MEMORY.search(stripped):
            peak = float(match.group(1))
            result.peak_memory_bytes = round(peak * MIB) if peak >= 0 else None  # -1: monitoring unsupported
        elif match := _REPLACING.search(stripped):
            result.delegations.append(Delegation(match.group(3), int(match.group(1)), int(match.group(2)),
                                                 int(match.group(4))))
        elif match := _EXPLICIT.search(stripped):
            result.explicit_delegation[match.group(1)] = "complete" if match.group(2) == "completely" else "partial"
        elif match := _NOT_EXECUTED.search(stripped):
            result.explicit_delegation[match.group(1)] = "none"
        elif _ERROR.search(stripped):
            result.errors.append(stripped)
    if stats:
        result.warmup = stats[0] if len(stats) > 1 else None
        result.inference = stats[-1]
    return result


def _key_values(text: str) -> dict[str, float]:
    return {key.strip().lower(): float(value) for key, value in _KEY_VALUE.findall(text)}


def _run_stats(line: str) -> RunStats:
    pairs = {key: float(value) for key, value in _STAT_PAIR.findall(line)}
    known = {k: pairs.pop(k, None) for k in ("first", "curr", "min", "max", "avg", "std")}
    return RunStats(count=int(pairs.pop("count", 0)), **known, extra=pairs)


def _op_row(row: str, header: list[str]) -> OpTiming | None:
    numeric = [c for c in header if c not in ("node type", "name")]
    # node type (may hold spaces), then one number per numeric column, then the name (maybe in [brackets])
    pattern = r"^(?P<type>.+?)" + "".join(rf"\s+({NUMBER})%?" for _ in numeric) + r"(?:\s+(?P<name>.*))?$"
    match = re.match(pattern, row)
    if match is None:
        return None
    values = dict(zip(numeric, (float(v) for v in match.groups()[1:1 + len(numeric)]), strict=True))
    if "avg ms" not in values:
        return None
    name = (match.group("name") or "").strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]

    def us(column: str) -> float | None:
        return values[column] * 1000 if column in values else None

    memory_kb = values.get("mem kb")
    times_called = values.get("times called")
    return OpTiming(node_type=match.group("type").strip(), name=name, avg_us=values["avg ms"] * 1000,
                    first_us=us("first"), start_us=us("start"), percent=values.get("%"),
                    cdf_percent=values.get("cdf%"),
                    memory_bytes=round(memory_kb * 1024) if memory_kb is not None else None,
                    times_called=int(times_called) if times_called is not None else None)
