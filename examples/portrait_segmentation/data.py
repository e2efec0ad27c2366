"""Generated "portraits": head-and-shoulders silhouettes on cluttered backgrounds, with the person mask as truth.

Nothing is downloaded, so the example runs offline and anyone gets the same images from the same seed. The task is
kept from being trivially separable on purpose: the background has gradients, blotchy low-frequency colour, noise,
and clutter (rectangles, ellipses, stripes) drawn partly in the same skin, hair and clothing colours as the person,
so a model has to learn the silhouette's shape, not a colour threshold. That also gives INT8 quantization something
real to lose: the decision depends on fine differences in activations, not on a huge margin.

numpy only, vectorised over a chunk of images (a loop over the few clutter shapes, not over pixels): 600 images at
256×256 take a few seconds.
"""

from __future__ import annotations

import numpy as np

SIZE = 256
CHUNK = 32  # images generated at once: temporaries stay in the tens of MB

# Seeds of the independent sets: calibration and evaluation images are never seen in training.
TRAIN_SEED = 1
CALIBRATION_SEED = 2
EVAL_SEED = 3

# Skin tones from light to dark; hair from black to blond. Clutter borrows them.
SKIN = np.array([[0.95, 0.80, 0.70], [0.87, 0.68, 0.55], [0.75, 0.55, 0.40], [0.55, 0.37, 0.25],
                 [0.36, 0.23, 0.15]], np.float32)
HAIR = np.array([[0.06, 0.05, 0.05], [0.25, 0.15, 0.08], [0.45, 0.30, 0.15], [0.80, 0.65, 0.40],
                 [0.50, 0.20, 0.08]], np.float32)
CLUTTER_SHAPES = 7
# Layers of the colour map, back to front: 0 the backdrop, 1..7 clutter, then the person's parts.
CLOTHING, STRIPES, SKIN_LAYER, HAIR_LAYER = range(CLUTTER_SHAPES + 1, CLUTTER_SHAPES + 5)
LAYERS = HAIR_LAYER + 1


def portraits(n: int, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """`n` portraits: (images (n,3,size,size) float32 in [0, 1], masks (n,1,size,size) float32 0/1).

    Deterministic in (seed, size), and a prefix of a longer set: `portraits(24, s)` are the first 24 images of
    `portraits(64, s)`, so a bigger evaluation set only adds samples. Generated CHUNK images at a time, each chunk
    with its own seed spawned from `seed`; use a different seed per set (TRAIN_SEED, CALIBRATION_SEED, EVAL_SEED).
    """
    images = np.empty((n, 3, size, size), np.float32)
    masks = np.empty((n, 1, size, size), np.float32)
    for index, chunk_seed in enumerate(np.random.SeedSequence(seed).spawn((n + CHUNK - 1) // CHUNK)):
        start, stop = index * CHUNK, min(n, (index + 1) * CHUNK)
        chunk_images, chunk_masks = _chunk(CHUNK, np.random.default_rng(chunk_seed), size)
        images[start:stop], masks[start:stop] = chunk_images[:stop - start], chunk_masks[:stop - start]
    return images, masks


def _chunk(n: int, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size  # pixel centres in [0, 1)
    yy, xx = centres[None, :, None], centres[None, None, :]  # (1,H,1) and (1,1,W): shapes build separably

    def u(low: float, high: float) -> np.ndarray:  # one value per image, broadcastable over (n, H, W)
        return _f32(rng.uniform(low, high, (n, 1, 1)))

    backdrop = _backdrop(n, rng, size, yy, xx)
    # One map of which layer is in front at each pixel (0: the backdrop, then clutter, then the person's parts), and
    # one colour per image and layer: the image is coloured once at the end, not painted layer by layer.
    layer = np.zeros((n, size, size), np.uint8)
    colours = np.zeros((n, LAYERS, 3), np.float32)
    _clutter(rng, yy, xx, layer, colours)

    # The person's geometry, normalised to the image: head centre, radii, tilt; torso below, leaning with it.
    head_x, head_y = u(0.3, 0.7), u(0.25, 0.5)
    head_rx = u(0.08, 0.15)
    head_ry = head_rx * u(1.15, 1.4)
    tilt = u(-0.3, 0.3)  # radians
    lean = u(-0.25, 0.25)  # horizontal shift of the body per unit of height below the head
    dx, dy = xx - head_x, yy - head_y
    cos, sin = np.cos(tilt), np.sin(tilt)
    rx_, ry_ = cos * dx + sin * dy, -sin * dx + cos * dy  # head-aligned coordinates
    head = (rx_ / head_rx) ** 2 + (ry_ / head_ry) ** 2 <= 1.0

    body_x = head_x + lean * np.maximum(dy, 0.0)  # the body's centre line at each row
    bx = xx - body_x
    neck = (np.abs(bx) <= head_rx * u(0.45, 0.6)) & (dy >= 0) & (dy <= head_ry * 1.35)
    shoulder_y = head_y + head_ry * u(1.1, 1.4)
    shoulder_w = head_rx * u(2.2, 3.2)
    shoulder_h = head_ry * u(0.35, 0.6)
    # Rounded shoulders (an ellipse) over a trapezoid that widens to the bottom of the frame.
    shoulders = ((bx / shoulder_w) ** 2 + ((yy - shoulder_y - shoulder_h) / shoulder_h) ** 2 <= 1.0)
    flare = u(0.0, 0.35)
    below = yy >= shoulder_y + shoulder_h
    torso = below & (np.abs(bx) <= shoulder_w * (1.0 + flare * (yy - shoulder_y - shoulder_h)))
    body = shoulders | torso
    # Some arms: a narrower ellipse on each side of the torso, hanging from the shoulders.
    arm_w = shoulder_w * u(0.18, 0.28)
    arms = rng.random((n, 1, 1)) < 0.6
    for side in (-1.0, 1.0):
        arm_x = bx - side * (shoulder_w - arm_w * 0.6)
        body |= arms & ((arm_x / arm_w) ** 2 + ((yy - shoulder_y - 0.45) / 0.4) ** 2 <= 1.0)
    body &= yy >= shoulder_y

    # Hair: a cap over the upper head, a bit larger than it, sometimes absent (bald or short hair).
    hair_grow = u(1.05, 1.25)
    hair_top = (rx_ / (head_rx * hair_grow)) ** 2 + ((ry_ + head_ry * 0.08) / (head_ry * hair_grow)) ** 2 <= 1.0
    hairline = ry_ <= -head_ry * u(0.1, 0.45)
    # Long hair: two locks beside the face, down past the chin.
    locks = (np.abs(rx_) >= head_rx * 0.75) & (np.abs(rx_) <= head_rx * hair_grow) & (ry_ >= -head_ry * 0.4) & (
        ry_ <= head_ry * 1.6)
    long_hair = locks & (rng.random((n, 1, 1)) < 0.3)
    hair = ((hair_top & hairline) | long_hair) & (rng.random((n, 1, 1)) < 0.8)

    # The person's colours; clothing has stripes at a random angle and period on half the images.
    colours[:, CLOTHING] = rng.uniform(0.05, 0.95, (n, 3))
    colours[:, STRIPES] = np.clip(colours[:, CLOTHING] + rng.uniform(-0.3, 0.3, (n, 3)), 0.0, 1.0)
    colours[:, SKIN_LAYER] = _jitter(SKIN[rng.integers(0, len(SKIN), n)], rng, 0.05)
    colours[:, HAIR_LAYER] = _jitter(HAIR[rng.integers(0, len(HAIR), n)], rng, 0.05)
    angle, period = u(0.0, np.pi), u(0.02, 0.08)
    stripes = (np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * (np.pi / period)) > 0) & (
        rng.random((n, 1, 1)) < 0.5)

    # Back to front: body, then neck and head, then hair.
    layer[body] = CLOTHING
    layer[body & stripes] = STRIPES
    layer[neck | head] = SKIN_LAYER
    layer[hair] = HAIR_LAYER
    mask = layer >= CLOTHING
    index = layer + (np.arange(n, dtype=np.int32) * LAYERS)[:, None, None]
    image = np.stack([np.take(colours[:, :, c].ravel(), index) for c in range(3)], axis=1)
    # Shading from one side makes the person a lit 3-D object, not a flat cut-out.
    shade = 1.0 + u(-0.25, 0.25) * (xx - head_x) * 3 + u(-0.1, 0.1)
    image *= np.where(mask, shade, np.float32(1.0))[:, None]
    image = np.where(layer[:, None] > 0, image, backdrop)

    # The camera: soft edges (a 3×3 box blur), exposure and sensor noise.
    image = _box_blur(image)
    image = image * u(0.75, 1.2)[:, None] + u(-0.08, 0.08)[:, None]
    image += rng.random(image.shape, np.float32) * np.float32(0.1) - np.float32(0.05)  # uniform: faster than normal
    return np.clip(image, 0.0, 1.0), mask[:, None].astype(np.float32)


def _backdrop(n: int, rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A linear gradient between two colours pulled part of the way to grey (rooms are rarely saturated), plus
    blotchy low-frequency colour. `yy` (1,H,1) and `xx` (1,1,W) are the pixel centres."""
    angle = _f32(rng.uniform(0, 2 * np.pi, (n, 1, 1)))
    ramp = np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5) + 0.5
    first, second = _f32(rng.uniform(0.0, 1.0, (2, n, 3, 1, 1)))
    grey = _f32(rng.uniform(0.2, 0.8, (n, 1, 1, 1)))
    first, second = (first + grey) / 2, (second + grey) / 2
    image = first + (second - first) * ramp[:, None]
    image += _low_frequency(_f32(rng.uniform(-0.15, 0.15, (n, 3, 6, 6))), size)
    return image


def _clutter(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, layer: np.ndarray, colours: np.ndarray) -> None:
    """Ellipses, boxes and thin posts behind the person, into `layer` and `colours` (layers 1..CLUTTER_SHAPES).

    Half the clutter wears a skin or hair colour, so colour alone never tells the person from the room. Shapes are
    built separably from (1,H,1) and (1,1,W) coordinates; a post is a narrow box that reaches the bottom edge.
    """
    n = len(layer)
    palette = np.concatenate([SKIN, HAIR])
    for k in range(1, CLUTTER_SHAPES + 1):
        borrowed = _jitter(palette[rng.integers(0, len(palette), n)], rng, 0.08)
        colours[:, k] = np.where(rng.random((n, 1)) < 0.5, borrowed, rng.uniform(0, 1, (n, 3)))
        colours[:, k] *= rng.uniform(0.8, 1.1, (n, 1))
        cx, cy = _f32(rng.uniform(-0.1, 1.1, (2, n, 1, 1)))
        w, h = _f32(rng.uniform(0.04, 0.35, (2, n, 1, 1)))
        kind = rng.integers(0, 3, (n, 1, 1))
        post = kind == 2
        w = np.where(post, w * 0.15, w)
        cy, h = np.where(post, (cy + 1.2) / 2, cy), np.where(post, (1.2 - cy) / 2, h)
        ex, ey = ((xx - cx) / w) ** 2, ((yy - cy) / h) ** 2  # (n,1,W) and (n,H,1)
        # An ellipse is ex + ey <= 1. A box is (ex <= 1) & (ey <= 1), the same test once ex and ey are snapped to
        # 0 inside and 2 outside: done on the small 1-D arrays, so every kind costs one full-image add and compare.
        box = kind != 0
        ex = np.where(box, np.where(ex <= 1, 0, 2), ex).astype(np.float32)
        ey = np.where(box, np.where(ey <= 1, 0, 2), ey).astype(np.float32)
        shape = ex + ey <= 1.0
        layer[shape & (rng.random((n, 1, 1)) < 0.85)] = k


def _f32(values: np.ndarray) -> np.ndarray:
    """Parameters in float32, so the full-image arithmetic they enter stays float32 (half the memory traffic)."""
    return np.asarray(values, np.float32)


def _low_frequency(grid: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of (n,c,g,g) to (n,c,size,size) as two small matrix products (separable)."""
    g = grid.shape[-1]
    position = np.linspace(0, g - 1, size, dtype=np.float32)
    lower = np.minimum(position.astype(np.int64), g - 2)
    frac = position - lower
    weights = np.zeros((size, g), np.float32)
    weights[np.arange(size), lower] = 1 - frac
    weights[np.arange(size), lower + 1] = frac
    return np.einsum("yi,ncij,xj->ncyx", weights, grid, weights, optimize=True)


def _box_blur(image: np.ndarray) -> np.ndarray:
    """3×3 mean (edges keep their 2×2 or 2×3 means): anti-aliases the painted edges the way a lens would.

    Separable sums into preallocated arrays: no padded copy, fewer temporaries.
    """
    rows = image.copy()
    rows[..., 1:, :] += image[..., :-1, :]
    rows[..., :-1, :] += image[..., 1:, :]
    out = rows.copy()
    out[..., 1:] += rows[..., :-1]
    out[..., :-1] += rows[..., 1:]
    counts = np.full(image.shape[-1], 3, np.float32)
    counts[[0, -1]] = 2
    out /= counts[:, None] * counts[None, :]
    return out


def _jitter(colours: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    return np.clip(colours + rng.uniform(-amount, amount, colours.shape), 0.0, 1.0).astype(np.float32)
