"""Frozen-feature cache: computed once per image and backbone, reused afterwards."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from baghunter.dataset.manifest import Manifest
from baghunter.training.data import load_images
from baghunter.training.features import FeatureCache, backbone_id
from baghunter.training.model import ClassifierParts, build_classifier

IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def scratch_parts() -> ClassifierParts:
    keras.utils.set_random_seed(0)
    _, parts = build_classifier("scratch", "none", 3, IMAGE_SIZE)
    return parts


def cache_for(parts: ClassifierParts, cache_dir: Path) -> FeatureCache:
    return FeatureCache(cache_dir, backbone_id("scratch", "none", parts.backbone, IMAGE_SIZE))


def test_second_run_reuses_every_feature(
    synthetic_manifest: Manifest, scratch_parts: ClassifierParts, tmp_path: Path
) -> None:
    entries = synthetic_manifest.split("val")
    first_cache = cache_for(scratch_parts, tmp_path)
    first = first_cache.features_for(entries, scratch_parts.feature_extractor, IMAGE_SIZE, 5)
    assert (first_cache.computed, first_cache.reused) == (len(entries), 0)

    # A new instance, as a later training run would create: everything comes from disk.
    second_cache = cache_for(scratch_parts, tmp_path)
    second = second_cache.features_for(entries, scratch_parts.feature_extractor, IMAGE_SIZE, 5)
    assert (second_cache.computed, second_cache.reused) == (0, len(entries))
    np.testing.assert_array_equal(first, second)


def test_features_are_those_of_the_extractor_in_entry_order(
    synthetic_manifest: Manifest, scratch_parts: ClassifierParts, tmp_path: Path
) -> None:
    entries = synthetic_manifest.split("test")[:6]
    cache = cache_for(scratch_parts, tmp_path)
    # Warm the cache with half of them, then ask for all in reverse order plus a duplicate.
    cache.features_for(entries[:3], scratch_parts.feature_extractor, IMAGE_SIZE, 4)
    wanted = [*reversed(entries), entries[0]]
    features = cache.features_for(wanted, scratch_parts.feature_extractor, IMAGE_SIZE, 4)

    assert (cache.computed, cache.reused) == (6, 3)
    direct = scratch_parts.feature_extractor.predict(
        load_images([e.path for e in wanted], IMAGE_SIZE), verbose=0
    )
    np.testing.assert_allclose(features, direct, rtol=1e-4, atol=1e-5)


def test_different_weights_never_share_a_cache(scratch_parts: ClassifierParts) -> None:
    keras.utils.set_random_seed(1)
    _, other = build_classifier("scratch", "none", 3, IMAGE_SIZE)
    ours = backbone_id("scratch", "none", scratch_parts.backbone, IMAGE_SIZE)
    assert backbone_id("scratch", "none", other.backbone, IMAGE_SIZE) != ours
    # Same weights at another input size compute other features too.
    assert backbone_id("scratch", "none", scratch_parts.backbone, 48) != ours
    # Same seed, same weights: the random initialisation reproduces, so it may share.
    keras.utils.set_random_seed(0)
    _, same = build_classifier("scratch", "none", 3, IMAGE_SIZE)
    assert backbone_id("scratch", "none", same.backbone, IMAGE_SIZE) == ours
