"""Perceptual hashes survive everyday edits, separate different pictures, and group at scale."""

from __future__ import annotations

import io
import itertools
import random
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageStat

from baghunter.config import Settings
from baghunter.images.phash import HASH_BITS, HEX_DIGITS, hamming, near_duplicate_groups, phash

from .synthetic import encode, scene

DEFAULT_DISTANCE = Settings.model_fields["phash_max_distance"].default
SEEDS = range(30)

Edit = Callable[[Image.Image], Image.Image]


def reencoded_jpeg(image: Image.Image) -> Image.Image:
    return Image.open(io.BytesIO(encode(image, "JPEG", quality=60)))


def cropped(image: Image.Image, fraction: float = 0.025) -> Image.Image:
    """Trim ``fraction`` of each dimension, split between both sides (a re-framed shot)."""
    dx, dy = round(image.width * fraction / 2), round(image.height * fraction / 2)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def rotated(image: Image.Image, degrees: float = 2.0) -> Image.Image:
    # Corners filled with the picture's mean colour, as an editor's "straighten" tool does.
    fill = tuple(int(v) for v in ImageStat.Stat(image).mean)
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=fill)


# Photometric and scale edits barely move the low frequencies: every copy must match.
EXACT_EDITS: dict[str, Edit] = {
    "half size": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "double size": lambda im: im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC),
    "jpeg quality 60": reencoded_jpeg,
    "brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.15),
    "darker": lambda im: ImageEnhance.Brightness(im).enhance(0.85),
}
# Geometric edits move content against the DCT basis. At 256 bits they land beyond the
# default distance (which is tight so unrelated catalog shots do not chain), but a copy
# must still be far closer to its original than any two different pictures are, so a
# looser threshold or an embedding check can catch it.
GEOMETRIC_EDITS: dict[str, Edit] = {"cropped 2.5%": cropped, "rotated 2 degrees": rotated}


def random_hash(rng: random.Random) -> str:
    return f"{rng.getrandbits(HASH_BITS):0{HEX_DIGITS}x}"


def flip_bits(hex_hash: str, bits: list[int]) -> str:
    value = int(hex_hash, 16)
    for bit in bits:
        value ^= 1 << bit
    return f"{value:0{HEX_DIGITS}x}"


def fake_sha(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


@pytest.fixture(scope="module")
def scenes() -> list[Image.Image]:
    return [scene(seed) for seed in SEEDS]


@pytest.fixture(scope="module")
def distinct_floor(scenes: list[Image.Image]) -> int:
    """The smallest distance between two different pictures."""
    hashes = [phash(image) for image in scenes]
    return min(hamming(a, b) for a, b in itertools.combinations(hashes, 2))


def test_hash_format_and_identity(scenes: list[Image.Image]) -> None:
    value = phash(scenes[0])
    assert len(value) == HEX_DIGITS == 64 and value == value.lower()
    int(value, 16)  # valid hex
    assert phash(scenes[0].copy()) == value
    assert hamming(value, value) == 0


def test_hamming_counts_differing_bits() -> None:
    zero = "0" * HEX_DIGITS
    assert hamming(zero, "f" * HEX_DIGITS) == HASH_BITS
    assert hamming("8" + "0" * (HEX_DIGITS - 2) + "1", zero) == 2
    assert hamming("0" * (HEX_DIGITS - 2) + "f0", "0" * (HEX_DIGITS - 2) + "10") == 3


@pytest.mark.parametrize("edit", EXACT_EDITS, ids=list(EXACT_EDITS))
def test_everyday_edits_stay_within_the_default_distance(
    scenes: list[Image.Image], edit: str
) -> None:
    distances = [hamming(phash(image), phash(EXACT_EDITS[edit](image))) for image in scenes]
    assert max(distances) <= DEFAULT_DISTANCE, distances


@pytest.mark.parametrize("edit", GEOMETRIC_EDITS, ids=list(GEOMETRIC_EDITS))
def test_small_geometric_edits_stay_far_closer_than_different_pictures(
    scenes: list[Image.Image], distinct_floor: int, edit: str
) -> None:
    distances = [hamming(phash(image), phash(GEOMETRIC_EDITS[edit](image))) for image in scenes]
    assert max(distances) < distinct_floor / 2, (distances, distinct_floor)


def test_different_pictures_are_far_apart() -> None:
    hashes = [phash(scene(seed)) for seed in range(100, 160)]
    distances = [hamming(a, b) for a, b in itertools.combinations(hashes, 2)]
    far = sum(d > DEFAULT_DISTANCE for d in distances)
    assert far >= 0.98 * len(distances)
    assert np.median(distances) >= 80  # unrelated 256-bit hashes differ in ~128 bits


def test_every_url_gets_a_group_and_singletons_are_their_own() -> None:
    rng = random.Random(1)
    items = [(f"https://cdn/{i}.jpg", fake_sha(rng), random_hash(rng)) for i in range(20)]
    groups = near_duplicate_groups(items, DEFAULT_DISTANCE)
    assert groups == {url: sha for url, sha, _ in items}


def test_identical_bytes_group_even_when_hashes_disagree() -> None:
    rng = random.Random(2)
    sha = fake_sha(rng)
    items = [("a", sha, "0" * HEX_DIGITS), ("b", sha, "f" * HEX_DIGITS)]
    assert near_duplicate_groups(items, 0) == {"a": sha, "b": sha}


def test_grouping_is_transitive_and_named_by_the_smallest_sha() -> None:
    rng = random.Random(3)
    base = random_hash(rng)
    step = DEFAULT_DISTANCE // 2 + 1  # two steps apart are beyond the distance, one is within
    near_base = flip_bits(base, list(range(step)))
    near_that = flip_bits(near_base, list(range(100, 100 + step)))  # linked only via middle
    assert hamming(base, near_that) > DEFAULT_DISTANCE
    shas = sorted(fake_sha(rng) for _ in range(4))
    items = [
        ("middle", shas[2], near_base),
        ("end", shas[0], near_that),
        ("start", shas[1], base),
        ("stranger", shas[3], flip_bits(base, list(range(0, HASH_BITS, 2)))),
    ]
    groups = near_duplicate_groups(items, DEFAULT_DISTANCE)
    assert groups == {"middle": shas[0], "end": shas[0], "start": shas[0], "stranger": shas[3]}


def test_max_distance_is_inclusive() -> None:
    base = "0f" * (HEX_DIGITS // 2)
    items = [("a", "1" * 64, base), ("b", "2" * 64, flip_bits(base, [5, 9, 40]))]
    assert near_duplicate_groups(items, 3)["b"] == "1" * 64
    assert near_duplicate_groups(items, 2)["b"] == "2" * 64


def planted_catalog(count: int, seed: int) -> tuple[list[tuple[str, str, str]], list[list[str]]]:
    """Random hashes plus clusters of copies within the default distance of an original."""
    rng = random.Random(seed)
    items = [(f"u{i}", fake_sha(rng), random_hash(rng)) for i in range(count)]
    clusters = []
    for cluster_index in range(count // 100):
        url, _, original = items[rng.randrange(count)]
        members = [url]
        for copy_index in range(rng.randint(1, 3)):
            copy = flip_bits(
                original, rng.sample(range(HASH_BITS), rng.randint(0, DEFAULT_DISTANCE))
            )
            copy_url = f"copy{cluster_index}-{copy_index}"
            items.append((copy_url, fake_sha(rng), copy))
            members.append(copy_url)
        clusters.append(members)
    rng.shuffle(items)
    return items, clusters


def reference_groups(items: list[tuple[str, str, str]], max_distance: int) -> set[frozenset[str]]:
    """Groups from the full distance matrix and a plain graph search: an independent oracle."""
    bits = np.array(
        [np.unpackbits(np.frombuffer(bytes.fromhex(h), dtype=np.uint8)) for _, _, h in items]
    )
    adjacent = (bits[:, None, :] != bits[None, :, :]).sum(axis=2) <= max_distance
    shas = np.array([sha for _, sha, _ in items])
    adjacent |= shas[:, None] == shas[None, :]
    seen: set[int] = set()
    groups = set()
    for start in range(len(items)):
        if start in seen:
            continue
        component, frontier = {start}, [start]
        while frontier:
            for neighbour in np.flatnonzero(adjacent[frontier.pop()]).tolist():
                if neighbour not in component:
                    component.add(neighbour)
                    frontier.append(neighbour)
        seen |= component
        groups.add(frozenset(items[i][0] for i in component))
    return groups


def as_partition(groups: dict[str, str]) -> set[frozenset[str]]:
    members: dict[str, set[str]] = {}
    for url, group in groups.items():
        members.setdefault(group, set()).add(url)
    return {frozenset(urls) for urls in members.values()}


def test_grouping_matches_a_brute_force_oracle_across_many_tiles() -> None:
    # 2,500 hashes span several comparison tiles, so pairs across tile edges are covered.
    items, clusters = planted_catalog(2_500, seed=4)
    # A few byte-identical copies too (same sha256 under another URL).
    items += [(f"alias-{url}", sha, phash_hex) for url, sha, phash_hex in items[:5]]
    groups = near_duplicate_groups(items, DEFAULT_DISTANCE)

    assert as_partition(groups) == reference_groups(items, DEFAULT_DISTANCE)
    for members in clusters:
        assert len({groups[url] for url in members}) == 1
    smallest: dict[str, str] = {}
    for url, sha, _ in items:
        group = groups[url]
        smallest[group] = min(smallest.get(group, sha), sha)
    assert all(group == sha for group, sha in smallest.items())


def test_grouping_is_deterministic_whatever_the_input_order() -> None:
    items, _ = planted_catalog(1_000, seed=5)
    expected = near_duplicate_groups(items, DEFAULT_DISTANCE)
    shuffled = list(items)
    random.Random(6).shuffle(shuffled)
    assert near_duplicate_groups(shuffled, DEFAULT_DISTANCE) == expected


def test_repeated_hashes_are_grouped() -> None:
    same = "123456789abcdef0" * (HEX_DIGITS // 16)
    items = [(f"u{i}", f"{i:064x}", same) for i in range(50)]
    assert set(near_duplicate_groups(items, 0).values()) == {f"{0:064x}"}


def test_bad_hashes_are_refused() -> None:
    with pytest.raises(ValueError):
        near_duplicate_groups([("u", "0" * 64, "abc")], DEFAULT_DISTANCE)


def test_scale_of_a_real_catalog() -> None:
    items, clusters = planted_catalog(40_000, seed=7)
    groups = near_duplicate_groups(items, DEFAULT_DISTANCE)
    assert len(groups) == len(items)
    for members in clusters:
        assert len({groups[url] for url in members}) == 1
