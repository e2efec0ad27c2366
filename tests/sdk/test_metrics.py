"""The release gate's metrics against values counted by hand on arrays small enough to check on paper."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from edgefarm.metrics import METRICS, describe_metrics, drop, evaluate


def classes_to_logits(classes: list, num_classes: int) -> np.ndarray:
    """A (N, H, W) class map → (N, C, H, W) logits whose argmax is that map (3.0 for the class, 0.0 elsewhere)."""
    return np.moveaxis(np.eye(num_classes)[np.asarray(classes)] * 3.0, -1, 1)


# --- iou ------------------------------------------------------------------------------------------------------

# Two samples of 4 pixels. sigmoid(x) > 0.5 ⇔ x > 0, so the predicted masks are [1 0 1 0] and [1 0 1 0].
LOGITS = np.array([[3.0, -1.0, 2.0, -4.0],
                   [0.5, -2.0, 1.0, -0.1]])
MASKS = np.array([[1, 1, 1, 0],
                  [0, 0, 1, 0]])
# sample 0: intersection {0, 2} = 2, union {0, 1, 2} = 3;  sample 1: intersection {2} = 1, union {0, 2} = 2


def test_iou_sums_intersections_and_unions_over_the_set():
    assert evaluate("iou", LOGITS, MASKS) == 3 / 5
    assert 3 / 5 != (2 / 3 + 1 / 2) / 2  # not the mean of per-sample IoUs


def test_iou_threshold_is_a_probability_for_logits_and_a_value_otherwise():
    # sigmoid(x) > 0.7 ⇔ x > 0.847: sample 1's 0.5 drops out → intersection 3, union {0,1,2} + {2} = 4
    assert evaluate("iou", LOGITS, MASKS, {"threshold": 0.7}) == 3 / 4
    probabilities = 1 / (1 + np.exp(-LOGITS))
    assert evaluate("iou", probabilities, MASKS, {"logits": False}) == 3 / 5
    assert evaluate("iou", LOGITS, MASKS, {"logits": False, "threshold": 0.75}) == 3 / 4  # 3, 2, 1 > 0.75
    with pytest.raises(ValueError, match=r"iou: param threshold=2.0 is a probability when logits=True"):
        evaluate("iou", LOGITS, MASKS, {"threshold": 2.0})


def test_iou_against_reference_logits_equals_iou_against_their_thresholded_mask():
    reference = np.array([[1.5, 0.2, -3.0, -0.5],
                          [-0.3, -2.0, 4.0, 0.1]])  # masks [1 1 0 0] and [0 0 1 1]
    # sample 0: ∩ {0} = 1, ∪ {0, 1, 2} = 3;  sample 1: ∩ {2} = 1, ∪ {0, 2, 3} = 3
    assert evaluate("iou", LOGITS, reference) == 2 / 6  # auto: float truth with values other than 0/1 is outputs
    assert evaluate("iou", LOGITS, reference, {"truth_is_logits": True}) == 2 / 6
    assert evaluate("iou", LOGITS, reference > 0) == 2 / 6  # a bool mask, used as is
    assert evaluate("iou", LOGITS, (reference > 0).astype(np.float32)) == 2 / 6  # float exactly 0/1: a mask
    with pytest.raises(ValueError, match=r"iou: truth_is_logits=False but truth has values other than 0 and 1 "
                                         r"\(-3.0, -2.0, -0.5, \.\.\.\); leave truth_is_logits unset"):
        evaluate("iou", LOGITS, reference, {"truth_is_logits": False})


def test_iou_truth_is_logits_follows_the_prediction_rule_also_for_probabilities():
    prediction = np.array([[0.9, 0.6, 0.2]])
    reference = np.array([[0.8, 0.4, 0.7]])
    # both masked by x > 0.5: [1 1 0] and [1 0 1] → ∩ 1, ∪ 3
    assert evaluate("iou", prediction, reference, {"logits": False, "truth_is_logits": True}) == 1 / 3


def test_iou_empty_against_empty_is_perfect_and_identical_inputs_score_one():
    assert evaluate("iou", -np.ones((2, 1, 3, 3)), np.zeros((2, 1, 3, 3), dtype=np.uint8)) == 1.0
    assert evaluate("iou", LOGITS, LOGITS) == 1.0


def test_iou_ignore_index_leaves_void_pixels_out():
    masks = np.array([[1, 255, 1, 0],
                      [255, 0, 1, 0]])
    # pixel 0,1 and 1,0 are void: sample 0 ∩ {0, 2} = 2, ∪ {0, 2} = 2; sample 1 ∩ {2} = 1, ∪ {2} = 1
    assert evaluate("iou", LOGITS, masks, {"ignore_index": 255}) == 3 / 3
    with pytest.raises(ValueError, match=r"iou: truth is an integer array with values other than 0 and 1 \(255\); "
                                         r"binary masks are 0/1 — pass ignore_index for void pixels"):
        evaluate("iou", LOGITS, masks)


def test_iou_squeezes_a_size_one_channel_axis_but_never_a_larger_one():
    prediction = LOGITS.reshape(2, 1, 2, 2)
    truth = MASKS.reshape(2, 2, 2)
    assert evaluate("iou", prediction, truth) == 3 / 5
    assert evaluate("iou", LOGITS.reshape(2, 2, 2), MASKS.reshape(2, 1, 2, 2)) == 3 / 5  # either side
    message = ("iou: prediction (2, 3, 64, 64) and truth (2, 64, 64) differ; shapes must match, except that one side "
               "may have an extra axis of size 1 (e.g. a (N, 1, H, W) output against (N, H, W) masks); "
               "for class label maps use miou")
    with pytest.raises(ValueError, match=re.escape(message)):
        evaluate("iou", np.zeros((2, 3, 64, 64)), np.zeros((2, 64, 64), dtype=np.uint8))


# --- miou -----------------------------------------------------------------------------------------------------

# One 2×3 image, 4 classes; class 3 is in neither map.
PREDICTED = [[[0, 0, 1],
              [1, 2, 2]]]
LABELS = np.array([[[0, 1, 1],
                    [1, 2, 0]]])
# class 0: ∩ {(0,0)} = 1, ∪ {(0,0), (0,1), (1,2)} = 3 → 1/3
# class 1: ∩ {(0,2), (1,0)} = 2, ∪ {(0,1), (0,2), (1,0)} = 3 → 2/3
# class 2: ∩ {(1,1)} = 1, ∪ {(1,1), (1,2)} = 2 → 1/2


def test_miou_averages_the_classes_present_and_skips_the_absent():
    logits = classes_to_logits(PREDICTED, 4)
    assert evaluate("miou", logits, LABELS) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)  # = 1/2, not 1.5/4
    assert evaluate("miou", logits, classes_to_logits(LABELS, 4)) == pytest.approx(1 / 2)  # reference logits
    assert evaluate("miou", logits, LABELS[:, None]) == pytest.approx(1 / 2)  # (N, 1, H, W) label maps
    assert evaluate("miou", logits, logits) == 1.0


def test_miou_ignore_index_and_num_classes():
    logits = classes_to_logits(PREDICTED, 4)
    labels = np.array([[[0, 1, 1],
                        [1, 2, 255]]])
    # (1,2) is void: class 0 ∩ 1 / ∪ {(0,0), (0,1)} = 2; class 1 still 2/3; class 2 ∩ {(1,1)} = ∪ → 1
    assert evaluate("miou", logits, labels, {"ignore_index": 255}) == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    with pytest.raises(ValueError, match=r"miou: truth labels 255 are outside 0\.\.3; pass ignore_index"):
        evaluate("miou", logits, labels)
    # a class the model cannot output still counts once it is in the truth: class 4 at (1,2) has IoU 0
    labels[0, 1, 2] = 4
    assert evaluate("miou", logits, labels, {"num_classes": 5}) == pytest.approx((1 / 2 + 2 / 3 + 1 / 2 + 0) / 4)


def test_miou_class_axis_and_its_errors():
    nhwc = np.moveaxis(classes_to_logits(PREDICTED, 4), 1, -1)
    assert evaluate("miou", nhwc, LABELS, {"class_axis": -1}) == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match=r"miou: prediction \(1, 1, 2, 3\) has 1 class on class_axis 1; miou needs "
                                         r"at least 2 — use iou"):
        evaluate("miou", np.zeros((1, 1, 2, 3)), LABELS)
    with pytest.raises(ValueError, match=r"miou: param class_axis=0 is axis 0, which stacks the samples"):
        evaluate("miou", nhwc, LABELS, {"class_axis": 0})
    with pytest.raises(ValueError, match=re.escape("miou: truth (1, 3, 2) is neither scores with the prediction's "
                                                   "shape (1, 4, 2, 3) nor a label map without its class axis 1: "
                                                   "(1, 2, 3)")):
        evaluate("miou", classes_to_logits(PREDICTED, 4), LABELS.transpose(0, 2, 1))


# --- pixel_agreement ------------------------------------------------------------------------------------------


def test_pixel_agreement_multi_class_and_binary():
    logits = classes_to_logits(PREDICTED, 4)
    # agree at (0,0), (0,2), (1,0), (1,1): 4 of 6; with (1,2) void: 4 of 5
    assert evaluate("pixel_agreement", logits, LABELS) == 4 / 6
    labels = LABELS.copy()
    labels[0, 1, 2] = 255
    assert evaluate("pixel_agreement", logits, labels, {"ignore_index": 255}) == 4 / 5
    # binary: [1 0 1 0] vs [1 1 1 0] agree 3, [1 0 1 0] vs [0 0 1 0] agree 3 → 6 of 8
    assert evaluate("pixel_agreement", LOGITS[:, None], MASKS[:, None]) == 6 / 8  # (N, 1, 4): size-1 class axis
    assert evaluate("pixel_agreement", LOGITS, MASKS, {"class_axis": None}) == 6 / 8  # no class axis at all


def test_pixel_agreement_refuses_to_argmax_a_mask_shaped_output():
    # (N, 4) binary logits with the default class_axis=1 would be argmaxed over pixels; a 0/1 truth gives it away
    with pytest.raises(ValueError, match=r"pixel_agreement: truth is an integer array with the prediction's shape "
                                         r"\(2, 4\) but is not one-hot along class_axis 1; .* need class_axis=None"):
        evaluate("pixel_agreement", LOGITS, MASKS)


# --- top1 / top5 ----------------------------------------------------------------------------------------------

SCORES = np.array([[0.1, 0.5, 0.2, 0.9, 0.0, 0.3],   # label 3 scores highest        → top1 and top5
                   [0.6, 0.1, 0.2, 0.3, 0.4, 0.5],   # label 5: one class above it   → top5 only
                   [0.9, 0.8, 0.7, 0.6, 0.5, 0.1]])  # label 5: five classes above   → neither
TRUE_CLASSES = np.array([3, 5, 5])


def test_top1_and_top5_against_labels_and_reference_scores():
    assert evaluate("top1", SCORES, TRUE_CLASSES) == 1 / 3
    assert evaluate("top5", SCORES, TRUE_CLASSES) == 2 / 3
    assert evaluate("top1", SCORES[:, None, :], TRUE_CLASSES[:, None]) == 1 / 3  # (N, 1, C) and (N, 1)
    reference = np.eye(6)[TRUE_CLASSES] + 0.01  # its argmax is the label: agreement
    assert evaluate("top1", SCORES, reference) == 1 / 3
    assert evaluate("top5", SCORES, reference) == 2 / 3
    assert evaluate("top1", SCORES, SCORES) == 1.0


def test_topk_ties_count_against_the_device():
    tied = np.array([[0.5, 0.5, 0.0, 0.0, 0.0, 0.0]])
    assert evaluate("top1", tied, np.array([0])) == 0.0  # cannot tell 0 from 1
    assert evaluate("top5", tied, np.array([0])) == 1.0
    assert evaluate("top1", np.zeros((2, 6)), np.array([0, 3])) == 0.0  # a dead output never scores


def test_topk_errors():
    with pytest.raises(ValueError, match=r"top5: prediction has 5 classes, so every label is among the top 5; "
                                         r"use top1"):
        evaluate("top5", np.zeros((2, 5)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"top1: truth labels 6 are outside 0\.\.5"):
        evaluate("top1", SCORES, np.array([3, 5, 6]))
    with pytest.raises(ValueError, match=re.escape("top1: truth (3, 2) is neither scores with the prediction's shape "
                                                   "(3, 6) nor labels of shape (3,) or (3, 1)")):
        evaluate("top1", SCORES, np.zeros((3, 2)))


# --- psnr, cosine, max_abs_error ------------------------------------------------------------------------------


def test_psnr():
    truth = np.array([[0.0, 1.0], [0.5, 0.5]])  # range 1 → peak 1
    prediction = truth + np.array([[0.1, -0.1], [0.1, -0.1]])  # MSE 0.01
    assert evaluate("psnr", prediction, truth) == pytest.approx(20 * math.log10(1) - 10 * math.log10(0.01))  # 20 dB
    assert evaluate("psnr", prediction, truth, {"peak": 255}) == pytest.approx(20 * math.log10(255) + 20)
    assert evaluate("psnr", truth, truth) == math.inf
    with pytest.raises(ValueError, match=r"psnr: truth is constant, so its range \(the default peak\) is 0; "
                                         r"pass peak="):
        evaluate("psnr", prediction, np.ones((2, 2)))


def test_cosine_per_sample_then_averaged_with_zero_vectors():
    prediction = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 2.0]])
    truth = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 2.0], [-2.0, -4.0]])
    # 1/√2, both zero → 1, one zero → 0, opposite → -1
    assert evaluate("cosine", prediction, truth) == pytest.approx((1 / math.sqrt(2) + 1 + 0 - 1) / 4)
    rng = np.random.default_rng(1)
    outputs = rng.normal(size=(3, 8, 5)).astype(np.float32)
    assert evaluate("cosine", outputs, outputs) == 1.0


def test_max_abs_error():
    assert evaluate("max_abs_error", np.array([[1, 2], [3, 4]]), np.array([[1.5, 2.0], [3.0, 1.0]])) == 3.0
    assert evaluate("max_abs_error", LOGITS, LOGITS) == 0.0
    assert METRICS["max_abs_error"].higher_is_better is False


# --- the registry, drop(), errors -----------------------------------------------------------------------------


def test_every_metric_returns_a_plain_float_and_is_described():
    assert [d["name"] for d in describe_metrics()] == list(METRICS)
    assert set(METRICS) == {"iou", "miou", "pixel_agreement", "top1", "top5", "psnr", "cosine", "max_abs_error"}
    for entry in describe_metrics():
        assert set(entry) == {"name", "higher_is_better", "needs", "description", "params"}
        assert entry["needs"] in ("logits", "labels", "any") and "\n" not in entry["description"]
    assert type(evaluate("iou", LOGITS.astype(np.float32), MASKS)) is float
    assert type(METRICS["top1"](SCORES, TRUE_CLASSES)) is float


def test_drop_is_positive_when_the_device_is_worse_in_either_direction():
    assert drop("iou", 0.90, 0.85) == pytest.approx(0.05)
    assert drop("iou", 0.85, 0.90) == pytest.approx(-0.05)
    assert drop("max_abs_error", 0.1, 0.3) == pytest.approx(0.2)
    assert drop("max_abs_error", 0.3, 0.1) == pytest.approx(-0.2)
    assert drop("psnr", math.inf, math.inf) == 0.0
    assert drop("psnr", math.inf, 40.0) == math.inf  # fails any finite tolerance
    assert drop("psnr", 40.0, math.inf) == -math.inf
    with pytest.raises(ValueError, match=r"psnr: cannot compare scores nan and 40.0"):
        drop("psnr", math.nan, 40.0)


def test_unknown_names_and_params():
    known = "iou, miou, pixel_agreement, top1, top5, psnr, cosine, max_abs_error"
    with pytest.raises(ValueError, match=f"unknown metric 'IoU'; known metrics: {known}$"):
        evaluate("IoU", LOGITS, MASKS)
    with pytest.raises(ValueError, match=f"unknown metric 'ssim'; known metrics: {known}$"):
        drop("ssim", 1.0, 0.5)
    with pytest.raises(ValueError, match=r"^iou: unknown param treshold; iou accepts: logits, threshold, "
                                         r"truth_is_logits, ignore_index$"):
        evaluate("iou", LOGITS, MASKS, {"treshold": 0.3})
    with pytest.raises(ValueError, match=r"^top1: unknown params k, logits; top1 takes no params$"):
        evaluate("top1", SCORES, TRUE_CLASSES, {"logits": True, "k": 3})
    with pytest.raises(ValueError, match=r"iou: param logits must be true or false, got 'false'"):
        evaluate("iou", LOGITS, MASKS, {"logits": "false"})


def test_input_errors_name_the_metric_and_both_shapes():
    with pytest.raises(ValueError, match=re.escape("cosine: prediction (2, 4) has 2 samples on axis 0 and truth "
                                                   "(3, 4) has 3; both must stack the same samples")):
        evaluate("cosine", LOGITS, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=re.escape("max_abs_error: prediction (2, 4) and truth (2, 2, 2) differ")):
        evaluate("max_abs_error", LOGITS, np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"psnr: prediction has 1 NaN or inf value; a model that outputs them fails"):
        evaluate("psnr", np.array([[1.0, np.nan]]), np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"iou: truth is a scalar; stack samples on axis 0"):
        evaluate("iou", LOGITS, np.float64(1.0))


# --- why segmentation gates threshold first -------------------------------------------------------------------


def test_segmentation_quantization_noise_keeps_iou_while_logit_psnr_ranks_outputs_wrongly():
    """IoU after thresholding, not PSNR of logits, is the segmentation metric.

    int8-like noise (±0.05 on logits of magnitude ~5) leaves the masks all but unchanged: IoU ≥ 0.99, while the
    logits' PSNR is a finite ~50 dB that says nothing about the masks on its own. Worse, PSNR ranks outputs the
    wrong way round: large errors in confident pixels (no pixel changes class) score far lower than a small
    shift of every logit (a zero-point error) that erodes every object's boundary.
    """
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    blobs = []
    for _ in range(4):
        cy, cx = rng.uniform(16, 48, 2)
        radius = rng.uniform(8, 20)
        blobs.append(5.0 * np.tanh((radius - np.hypot(yy - cy, xx - cx)) / 4.0))  # > 0 inside, ±5 away from edges
    reference = np.stack(blobs)[:, None].astype(np.float32)  # (4, 1, 64, 64) FP32 logits

    quantized = reference + rng.uniform(-0.05, 0.05, reference.shape).astype(np.float32)
    assert evaluate("iou", quantized, reference) >= 0.99
    assert 40.0 < evaluate("psnr", quantized, reference) < 60.0  # 20·log10(10) − 10·log10(0.05²/3) ≈ 50.8 dB

    confident_noise = reference + np.where(np.abs(reference) > 3, rng.uniform(-2, 2, reference.shape), 0.0)
    shifted = reference - 0.5
    assert evaluate("iou", confident_noise, reference) == 1.0
    assert evaluate("iou", shifted, reference) < 0.96
    assert evaluate("psnr", confident_noise, reference) < 22.0 < 25.0 < evaluate("psnr", shifted, reference)
