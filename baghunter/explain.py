"""Why this brand: an occlusion heatmap of the parts of a photo the answer rests on.

Each cell of a grid laid over the photo (as the model sees it, at its input size) is
covered in turn with the photo's mean colour, all the covered copies are scored in one
batch, and a cell's heat is how much covering it lowers the explained brand's
probability. Parts whose loss costs the brand most - a logo, a clasp, a monogram - light
up; the background stays dark.

Occlusion asks the model nothing but its answers, so it explains any served model the
same way, whatever its layers or the engine that runs it, at the price of one batch of
``grid²`` forward passes (49 by default).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from baghunter.inference import BrandPredictor
from baghunter.training.data import resize_uint8

DEFAULT_GRID = 7
MAX_OVERLAY_SIDE = 512  # the returned PNG's longer side at most


@dataclass(frozen=True)
class Explanation:
    brand: str  # the brand explained
    probability: float  # its probability for the whole photo
    heat: np.ndarray  # (grid, grid) in [0, 1]: how much each cell supports the brand


def explain(
    predictor: BrandPredictor,
    image: np.ndarray,
    brand: str | None = None,
    grid: int = DEFAULT_GRID,
) -> Explanation:
    """The occlusion heatmap of ``brand`` (default: the top brand) on an RGB uint8 photo."""
    if not 2 <= grid <= 16:
        raise ValueError(f"grid must be 2..16, not {grid}")
    size = predictor.image_size
    pixels = np.asarray(resize_uint8(image, size))
    base = predictor.probabilities([pixels])[0]
    if brand is None:
        target = int(np.argmax(base))
    elif brand in predictor.classes:
        target = predictor.classes.index(brand)
    else:
        raise KeyError(brand)
    edges = np.linspace(0, size, grid + 1).round().astype(int)
    fill = pixels.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    covered = []
    for row in range(grid):
        for col in range(grid):
            copy = pixels.copy()
            copy[edges[row] : edges[row + 1], edges[col] : edges[col + 1]] = fill
            covered.append(copy)
    scores = predictor.probabilities(np.stack(covered), batch_size=len(covered))[:, target]
    drop = np.clip(base[target] - scores, 0, None).reshape(grid, grid)
    heat = drop / drop.max() if drop.max() > 0 else drop
    return Explanation(predictor.classes[target], float(base[target]), heat.astype(np.float32))


def overlay_png(image: np.ndarray, heat: np.ndarray) -> bytes:
    """The photo with the heatmap laid over it in warm colours, as PNG bytes."""
    photo = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    scale = MAX_OVERLAY_SIDE / max(photo.size)
    if scale < 1:
        photo = photo.resize(
            (max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
            Image.Resampling.LANCZOS,
        )
    # Bilinear upsampling of the coarse grid: smooth blobs rather than hard squares.
    levels = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8), mode="L")
    smooth = np.asarray(levels.resize(photo.size, Image.Resampling.BILINEAR), np.float32) / 255
    # Dark red (weak) to yellow (strong), blended in proportion to the heat.
    colour = np.stack([np.full_like(smooth, 255), 220 * smooth, 40 * (1 - smooth)], axis=-1)
    alpha = (0.65 * smooth)[..., None]
    base = np.asarray(photo, np.float32) * (1 - 0.35 * (1 - smooth[..., None]))  # dim the rest
    blended = base * (1 - alpha) + colour * alpha
    out = io.BytesIO()
    Image.fromarray(blended.clip(0, 255).astype(np.uint8)).save(out, "PNG")
    return out.getvalue()
