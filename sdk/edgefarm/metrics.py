"""Accuracy metrics for the release gate: how close a compiled model's on-device outputs are to the truth.

The truth is either the FP32 source model's outputs on the same inputs (the "reference") or ground truth
(masks, label maps, class labels). Both arrive exactly as model outputs do: samples stacked on axis 0,
e.g. (N, 1, 256, 256) segmentation logits or (N, 1000) class scores. numpy only, so the SDK, the gateway
and a device agent all compute the same number from the same arrays.

Choosing a metric is part of the gate's correctness, not a detail:

- Segmentation: compare masks after thresholding (`iou`, `miou`, `pixel_agreement`). Quantization moves
  logits a little everywhere; only a change of sign near a boundary changes the product. PSNR or
  max_abs_error on logits punish harmless noise deep in the background and cannot see which errors matter.
- Classification: `top1` / `top5` (agreement with the reference's argmax, or accuracy against labels).
- Bounded outputs (images, depth, embeddings): `psnr`, `cosine`, `max_abs_error`.

Every metric is computed over the whole set (e.g. IoU = sum of intersections / sum of unions), in float64,
and returns a plain Python float. `drop()` turns a reference score and a device score into "how much worse",
whichever direction the metric has, so a gate is one comparison: `drop(...) <= tolerance`.

Inputs containing NaN or inf are refused with a ValueError rather than scored: a compiled model producing
them is broken, and a NaN score would slip through any comparison a gate makes.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["METRICS", "Metric", "agreement", "check", "describe_metrics", "drop", "evaluate"]


class _Invalid(ValueError):
    """Raised inside a metric; Metric.__call__ prefixes the metric's name, so every message says whose it is."""


@dataclass(frozen=True)
class Metric:
    """One registered metric. Call it with (prediction, truth, **params); `params` lists what it accepts."""

    name: str
    higher_is_better: bool
    needs: str  # what the truth must be: "logits" (same kind and shape as the prediction) | "labels" | "any"
    description: str  # one line for docs and errors
    fn: Callable[..., float] = field(repr=False, compare=False)

    @property
    def params(self) -> dict[str, Any]:
        """Accepted params and their defaults, read from the implementing function so they cannot drift."""
        signature = inspect.signature(self.fn)
        return {p.name: p.default for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY}

    def __call__(self, prediction: np.ndarray, truth: np.ndarray, **params: Any) -> float:
        accepted = self.params
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            takes = f"accepts: {', '.join(accepted)}" if accepted else "takes no params"
            raise ValueError(f"{self.name}: unknown param{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(unknown)}; {self.name} {takes}")
        try:
            prediction = _checked_array("prediction", prediction)
            truth = _checked_array("truth", truth)
            if prediction.shape[0] != truth.shape[0]:
                raise _Invalid(f"prediction {prediction.shape} has {prediction.shape[0]} samples on axis 0 and "
                               f"truth {truth.shape} has {truth.shape[0]}; both must stack the same samples, "
                               "in the same order")
            return float(self.fn(prediction, truth, **params))
        except _Invalid as exc:
            raise ValueError(f"{self.name}: {exc}") from None


# --------------------------------------------------------------------------------------------------------------
# Input checks shared by every metric


def _checked_array(role: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise _Invalid(f"{role} has dtype {array.dtype}; metrics take bool, integer or float arrays")
    if array.ndim == 0:
        raise _Invalid(f"{role} is a scalar; stack samples on axis 0, e.g. shape (N, ...)")
    if array.size == 0:
        raise _Invalid(f"{role} {array.shape} is empty; there is nothing to score")
    if array.dtype.kind == "f":
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise _Invalid(f"{role} has {bad} NaN or inf value{'s' if bad > 1 else ''}; a model that outputs "
                           "them fails the comparison whatever the metric, so they are not scored")
    return array


def _align(prediction: np.ndarray, truth: np.ndarray, hint: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Equal shapes, or equal once an extra size-1 axis (not axis 0) is dropped from either side.

    Why: a single-channel model output is (N, 1, H, W) while masks are often stored (N, H, W), and a compiled
    model may keep a singleton the source dropped. Removing a size-1 axis never reorders data, so whichever
    size-1 axis matches, the result is the same array; an axis of size > 1 is never guessed away.
    """
    if prediction.shape == truth.shape:
        return prediction, truth
    longer, shorter = (prediction, truth) if prediction.ndim > truth.ndim else (truth, prediction)
    if longer.ndim == shorter.ndim + 1:
        for axis in range(1, longer.ndim):
            if longer.shape[axis] == 1 and longer.shape[:axis] + longer.shape[axis + 1:] == shorter.shape:
                longer = longer.reshape(shorter.shape)
                return (longer, shorter) if prediction.ndim > truth.ndim else (shorter, longer)
    raise _Invalid(f"prediction {prediction.shape} and truth {truth.shape} differ; shapes must match, except that "
                   f"one side may have an extra axis of size 1 (e.g. a (N, 1, H, W) output against (N, H, W) masks)"
                   f"{hint}")


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise _Invalid(f"param {name} must be true or false, got {value!r}")
    return bool(value)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        raise _Invalid(f"param {name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise _Invalid(f"param {name} must be finite, got {value!r}")
    return float(value)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise _Invalid(f"param {name} must be an integer, got {value!r}")
    return int(value)


def _axis(name: str, value: Any, ndim: int) -> int:
    axis = _integer(name, value)
    if not -ndim <= axis < ndim:
        raise _Invalid(f"param {name}={axis} is out of range for a prediction with {ndim} axes")
    axis %= ndim
    if axis == 0:
        raise _Invalid(f"param {name}={value} is axis 0, which stacks the samples; classes are on another axis")
    return axis


def _sample(values: np.ndarray, limit: int = 3) -> str:
    shown = ", ".join(str(v) for v in values[:limit].tolist())
    return shown + (", ..." if values.size > limit else "")


# --------------------------------------------------------------------------------------------------------------
# Binary masks: iou and single-channel pixel_agreement


def _threshold(values: np.ndarray, logits: bool, threshold: float) -> np.ndarray:
    """sigmoid(x) > t, compared as x > log(t / (1 - t)): the same mask without exp() overflowing on big logits."""
    values = values.astype(np.float64)
    if logits:
        return values > math.log(threshold / (1.0 - threshold))
    return values > threshold


def _binary_masks(prediction: np.ndarray, truth: np.ndarray, logits: Any, threshold: Any, truth_is_logits: Any,
                  ignore_index: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(prediction mask, truth mask, pixels to count or None for all)."""
    logits = _flag("logits", logits)
    threshold = _number("threshold", threshold)
    if logits and not 0.0 < threshold < 1.0:
        raise _Invalid(f"param threshold={threshold} is a probability when logits=True (sigmoid(x) > threshold), "
                       "so it must be strictly between 0 and 1; pass logits=False to threshold raw values")
    if truth_is_logits is not None:
        truth_is_logits = _flag("truth_is_logits", truth_is_logits)
    if ignore_index is not None:
        ignore_index = _integer("ignore_index", ignore_index)
    prediction, truth = _align(prediction, truth, "; for class label maps use miou")
    predicted = _threshold(prediction, logits, threshold)

    counted = truth != ignore_index if ignore_index is not None else None
    labelled = truth if counted is None else truth[counted]
    not_binary = labelled[(labelled != 0) & (labelled != 1)]
    if truth_is_logits is None:  # auto: only a float array with values other than 0/1 can be a model's outputs
        truth_is_logits = truth.dtype.kind == "f" and not_binary.size > 0
    if truth_is_logits:
        if truth.dtype.kind == "b":
            raise _Invalid("truth_is_logits=True but truth is a bool array; a mask is used as is, so leave "
                           "truth_is_logits unset (or False)")
        return predicted, _threshold(truth, logits, threshold), None  # outputs have no void pixels to ignore
    if not_binary.size:
        if truth.dtype.kind == "f":
            raise _Invalid(f"truth_is_logits=False but truth has values other than 0 and 1 "
                           f"({_sample(np.unique(not_binary))}); leave truth_is_logits unset (or True) when the "
                           "truth is a model's outputs, which are thresholded like the prediction")
        raise _Invalid(f"truth is an integer array with values other than 0 and 1 ({_sample(np.unique(not_binary))}); "
                       "binary masks are 0/1 — pass ignore_index for void pixels (e.g. 255), or use miou for "
                       "class label maps")
    if counted is not None and not np.any(counted):
        raise _Invalid(f"every truth pixel is ignore_index={ignore_index}; there is nothing to score")
    return predicted, truth == 1, counted


def _iou(prediction: np.ndarray, truth: np.ndarray, *, logits: bool = True, threshold: float = 0.5,
         truth_is_logits: bool | None = None, ignore_index: int | None = None) -> float:
    """Binary IoU over the whole set.

    logits: the prediction is raw logits, masked by sigmoid(x) > threshold; False: masked by x > threshold
    (probabilities, or any score with its own threshold).
    threshold: 0.5 by default; a probability when logits=True.
    truth_is_logits: True: the truth is another model's outputs (the FP32 reference) and is masked by the very
    same rule as the prediction; False: the truth is a 0/1 mask (bool, integer, or float exactly 0/1) used as
    is; None (default): decided from the truth — a float array with any value other than 0 and 1 is outputs,
    anything else is a mask. The default is safe for both kinds of truth, so one gate config can compare
    against the reference and against ground truth.
    ignore_index: a value in a mask truth (e.g. 255) marking void pixels, counted in neither intersection nor
    union; not applied to truth that is outputs.

    Sum of intersections / sum of unions over all samples, so small objects weigh what their pixels weigh;
    nothing predicted where nothing is true is perfect agreement (1.0), not 0/0.
    """
    predicted, true, counted = _binary_masks(prediction, truth, logits, threshold, truth_is_logits, ignore_index)
    intersection, union = predicted & true, predicted | true
    if counted is not None:
        intersection, union = intersection & counted, union & counted
    union_count = int(np.count_nonzero(union))
    return 1.0 if union_count == 0 else np.count_nonzero(intersection) / union_count


# --------------------------------------------------------------------------------------------------------------
# Class maps: miou and multi-class pixel_agreement


def _class_maps(prediction: np.ndarray, truth: np.ndarray, axis: int, ignore_index: Any,
                num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(predicted classes, true classes, pixels to count or None for all), labels checked against num_classes.

    Truth with the prediction's shape is scores (argmax over the same axis; one-hot labels work too); truth
    without the class axis, or with it at size 1, is a label map.
    """
    if ignore_index is not None:
        ignore_index = _integer("ignore_index", ignore_index)
    predicted = np.argmax(prediction, axis=axis)
    no_class_axis = prediction.shape[:axis] + prediction.shape[axis + 1:]
    if truth.shape == prediction.shape:
        if truth.dtype.kind in "biu" and not (np.all((truth == 0) | (truth == 1)) and np.all(truth.sum(axis) == 1)):
            raise _Invalid(f"truth is an integer array with the prediction's shape {prediction.shape} but is not "
                           f"one-hot along class_axis {axis}; label maps drop the class axis {no_class_axis}, and "
                           "outputs without a class axis need class_axis=None")
        return predicted, np.argmax(truth, axis=axis), None  # outputs: argmax is always a class, nothing to ignore
    if truth.shape == prediction.shape[:axis] + (1,) + prediction.shape[axis + 1:]:
        truth = truth.reshape(no_class_axis)
    if truth.shape != no_class_axis:
        raise _Invalid(f"truth {truth.shape} is neither scores with the prediction's shape {prediction.shape} nor a "
                       f"label map without its class axis {axis}: {no_class_axis}")
    if truth.dtype.kind == "f":
        if not np.all(truth == np.round(truth)):
            raise _Invalid(f"truth {truth.shape} has the shape of a label map but non-integer values; pass integer "
                           f"class labels, or scores with the prediction's shape {prediction.shape}")
    labels = truth.astype(np.int64)
    counted = labels != ignore_index if ignore_index is not None else None
    used = labels if counted is None else labels[counted]
    outside = used[(used < 0) | (used >= num_classes)]
    if outside.size:
        hint = "; pass ignore_index for void pixels" if ignore_index is None else ""
        raise _Invalid(f"truth labels {_sample(np.unique(outside))} are outside 0..{num_classes - 1}{hint}")
    if counted is not None and not np.any(counted):
        raise _Invalid(f"every truth pixel is ignore_index={ignore_index}; there is nothing to score")
    return predicted, labels, counted


def _miou(prediction: np.ndarray, truth: np.ndarray, *, class_axis: int = 1, num_classes: int | None = None,
          ignore_index: int | None = None) -> float:
    """Mean IoU over classes, from one confusion matrix over the whole set.

    class_axis: the prediction's class axis (default 1, NCHW); its argmax is the predicted class. truth: scores
    of the same shape (argmax the same way), or an integer label map without the class axis (or with it at size 1).
    num_classes: how many classes labels may name (default: the class-axis size); a class the model cannot
    output still counts (with IoU 0) if it is in the truth.
    ignore_index: a label (e.g. 255) for void pixels, left out entirely; only label maps have one.
    Classes in neither prediction nor truth are skipped: they say nothing about this set, and counting them
    as 1.0 or 0.0 would move the mean with the choice of images.
    """
    axis = _axis("class_axis", class_axis, prediction.ndim)
    size = prediction.shape[axis]
    if size < 2:
        raise _Invalid(f"prediction {prediction.shape} has {size} class on class_axis {axis}; miou needs at least "
                       "2 — use iou for a single-channel mask, or pass the right class_axis")
    n = size if num_classes is None else _integer("num_classes", num_classes)
    if n < size:
        raise _Invalid(f"num_classes={n} is fewer than the prediction's {size} classes on class_axis {axis}")
    predicted, labels, counted = _class_maps(prediction, truth, axis, ignore_index, n)
    if counted is not None:
        predicted, labels = predicted[counted], labels[counted]
    confusion = np.bincount(labels.ravel() * n + predicted.ravel(), minlength=n * n).reshape(n, n)
    hits = np.diag(confusion).astype(np.float64)
    unions = confusion.sum(axis=0) + confusion.sum(axis=1) - hits
    present = unions > 0
    return float(np.mean(hits[present] / unions[present]))


def _pixel_agreement(prediction: np.ndarray, truth: np.ndarray, *, class_axis: int | None = 1, logits: bool = True,
                     threshold: float = 0.5, truth_is_logits: bool | None = None,
                     ignore_index: int | None = None) -> float:
    """Fraction of pixels (elements) whose class agrees.

    Multi-class when the prediction's class_axis (default 1) has size > 1: argmax, with truth as in miou.
    Binary when that axis has size 1, or class_axis=None for outputs without a class axis — pass it for
    (N, H, W) logits, which would otherwise be argmaxed over H; binary masks use logits, threshold and
    truth_is_logits exactly as iou does. ignore_index: void label in a mask or label-map truth, not counted.
    Unlike IoU this is dominated by the background, so it reads high even when a small object is lost.
    """
    if class_axis is not None:
        axis = _axis("class_axis", class_axis, prediction.ndim)
        if prediction.shape[axis] > 1:
            predicted, labels, counted = _class_maps(prediction, truth, axis, ignore_index, prediction.shape[axis])
            agree = predicted == labels
            return float(np.mean(agree if counted is None else agree[counted]))
    predicted, true, counted = _binary_masks(prediction, truth, logits, threshold, truth_is_logits, ignore_index)
    agree = predicted == true
    return float(np.mean(agree if counted is None else agree[counted]))


# --------------------------------------------------------------------------------------------------------------
# Classification


def _topk(prediction: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Share of samples whose truth class is among the k highest scores; a tie counts against the device.

    The truth class is a hit only if fewer than k other classes score at least as high: a quantized output
    that cannot separate the top classes did not rank the right one first, and an all-equal (dead) output
    must not score 1.0. Truth scores name their class by argmax (the first one on a tie).
    """
    scores = prediction.reshape([prediction.shape[0]] + [s for s in prediction.shape[1:] if s != 1])
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise _Invalid(f"prediction {prediction.shape} is not one score vector per sample; expected (N, C) with "
                       "C >= 2, or with singleton axes such as (N, 1, C)")
    classes = scores.shape[1]
    if classes <= k:
        raise _Invalid(f"prediction has {classes} classes, so every label is among the top {k}; use top1")
    squeezed = truth.reshape([truth.shape[0]] + [s for s in truth.shape[1:] if s != 1])
    if squeezed.shape == scores.shape:
        labels = np.argmax(squeezed, axis=1)
    elif squeezed.ndim == 1:
        if truth.dtype.kind == "f" and not np.all(truth == np.round(truth)):
            raise _Invalid(f"truth {truth.shape} has the shape of labels but non-integer values; pass integer "
                           f"class labels, or scores with the prediction's shape {prediction.shape}")
        labels = squeezed.astype(np.int64)
        outside = labels[(labels < 0) | (labels >= classes)]
        if outside.size:
            raise _Invalid(f"truth labels {_sample(np.unique(outside))} are outside 0..{classes - 1}")
    else:
        raise _Invalid(f"truth {truth.shape} is neither scores with the prediction's shape {prediction.shape} nor "
                       f"labels of shape ({prediction.shape[0]},) or ({prediction.shape[0]}, 1)")
    scores = scores.astype(np.float64)
    label_scores = scores[np.arange(scores.shape[0]), labels]
    at_least_as_high = np.count_nonzero(scores >= label_scores[:, None], axis=1) - 1  # others, not the label
    return float(np.mean(at_least_as_high < k))


def _top1(prediction: np.ndarray, truth: np.ndarray) -> float:
    return _topk(prediction, truth, 1)


def _top5(prediction: np.ndarray, truth: np.ndarray) -> float:
    return _topk(prediction, truth, 5)


# --------------------------------------------------------------------------------------------------------------
# Values


def _values(prediction: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prediction, truth = _align(prediction, truth)
    return prediction.astype(np.float64), truth.astype(np.float64)


def _psnr(prediction: np.ndarray, truth: np.ndarray, *, peak: float | None = None) -> float:
    """20·log10(peak) − 10·log10(MSE), MSE over the whole set; inf when the outputs are identical.

    peak: the largest possible signal, e.g. 1.0 or 255 for images; default: the truth's range (max − min),
    which is what a float reference offers when nobody says what the output is bounded by. PSNR suits bounded
    outputs (images, depth); on segmentation logits it mostly measures noise in pixels whose class is not in
    doubt — use iou there.
    """
    prediction, truth = _values(prediction, truth)
    if peak is None:
        peak = float(truth.max() - truth.min())
        if peak == 0.0:
            raise _Invalid("truth is constant, so its range (the default peak) is 0; pass peak=, e.g. 1.0 or 255")
    else:
        peak = _number("peak", peak)
        if peak <= 0.0:
            raise _Invalid(f"param peak must be positive, got {peak}")
    mse = float(np.mean(np.square(prediction - truth)))
    if mse == 0.0:
        return math.inf
    return 20.0 * math.log10(peak) - 10.0 * math.log10(mse)


def _cosine(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Cosine similarity of each sample's flattened outputs, averaged over samples.

    Per sample, so one sample with large values cannot hide another that points elsewhere. A zero vector has
    no direction: two zero vectors agree (1.0), a zero against a non-zero does not (0.0).
    """
    prediction, truth = _values(prediction, truth)
    a, b = prediction.reshape(prediction.shape[0], -1), truth.reshape(truth.shape[0], -1)
    dots, aa, bb = np.einsum("ij,ij->i", a, b), np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
    cosines = np.where(aa * bb > 0, dots / np.sqrt(np.where(aa * bb > 0, aa * bb, 1.0)), (aa == bb) * 1.0)
    return float(np.mean(np.clip(cosines, -1.0, 1.0)))  # sqrt(x·x) == x exactly, so identical rows give 1.0


def _max_abs_error(prediction: np.ndarray, truth: np.ndarray) -> float:
    """The largest |prediction − truth| anywhere: a bound, for outputs where every element must be close."""
    prediction, truth = _values(prediction, truth)
    return float(np.max(np.abs(prediction - truth)))


# --------------------------------------------------------------------------------------------------------------
# Registry


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("iou", True, "any", "binary segmentation IoU over the set, after thresholding (sigmoid for logits)",
               _iou),
        Metric("miou", True, "any", "mean IoU over classes present in prediction or truth, after argmax", _miou),
        Metric("pixel_agreement", True, "any", "fraction of pixels whose class (argmax) or mask (threshold) agrees",
               _pixel_agreement),
        Metric("top1", True, "any", "share of samples whose truth class (label, or reference argmax) scores highest",
               _top1),
        Metric("top5", True, "any", "share of samples whose truth class is among the 5 highest scores", _top5),
        Metric("psnr", True, "logits", "peak signal-to-noise ratio in dB, for bounded outputs such as images",
               _psnr),
        Metric("cosine", True, "logits", "cosine similarity of each sample's flattened outputs, averaged", _cosine),
        Metric("max_abs_error", False, "logits", "largest absolute difference between corresponding elements",
               _max_abs_error),
    )
}


def _metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}") from None


def evaluate(metric: str, prediction: np.ndarray, truth: np.ndarray, params: dict | None = None) -> float:
    """The named metric on (prediction, truth) with params, e.g. from a gate's config."""
    if params is not None and not isinstance(params, dict):
        raise ValueError(f"{metric}: params must be a dict of param name to value, got {type(params).__name__}")
    return _metric(metric)(prediction, truth, **(params or {}))


def agreement(metric: str, prediction: np.ndarray, reference: np.ndarray, params: dict | None = None) -> float:
    """The metric between two outputs of the same model (device against FP32): the reference is thresholded or
    argmaxed the same way as the prediction, never taken for a ground-truth mask."""
    params = dict(params or {})
    if "truth_is_logits" in _metric(metric).params:
        params["truth_is_logits"] = True  # "the truth is outputs too": the prediction's own rule applies
    return evaluate(metric, prediction, reference, params)


def check(metric: str, params: dict | None = None) -> None:
    """Refuse an unknown metric or param before any array exists (a pipeline checks its spec at submit)."""
    accepted = _metric(metric).params
    if params is not None and not isinstance(params, dict):
        raise ValueError(f"{metric}: params must be a dict of param name to value, got {type(params).__name__}")
    unknown = sorted(set(params or {}) - set(accepted))
    if unknown:
        takes = f"accepts: {', '.join(accepted)}" if accepted else "takes no params"
        raise ValueError(f"{metric}: unknown param{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"{metric} {takes}")


def describe_metrics() -> list[dict]:
    """One dict per metric (name, higher_is_better, needs, description, params with defaults) for docs and the API."""
    return [
        {"name": m.name, "higher_is_better": m.higher_is_better, "needs": m.needs, "description": m.description,
         "params": m.params}
        for m in METRICS.values()
    ]


def drop(metric: str, reference_score: float, device_score: float) -> float:
    """How much worse the device scores than the reference: positive = worse, negative = better, in the metric's
    units, whichever direction the metric has. Equal scores drop 0.0, including inf == inf (identical PSNR);
    a finite device PSNR against an infinite reference is an infinite drop, which fails any finite tolerance.
    """
    m = _metric(metric)
    reference, device = float(reference_score), float(device_score)
    if math.isnan(reference) or math.isnan(device):
        raise ValueError(f"{m.name}: cannot compare scores {reference} and {device}; a NaN score is not a score")
    if reference == device:
        return 0.0
    return reference - device if m.higher_is_better else device - reference
