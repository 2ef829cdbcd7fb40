"""Perceptual hashes and near-duplicate groups across a whole catalog.

The same product photo reaches a catalog resized, re-compressed, cropped by a few pixels or
colour-corrected. If such copies land on both sides of a train/test split, test accuracy
measures memory rather than recognition; dataset curation therefore keeps every group of
near-identical images in one split. A DCT perceptual hash ("pHash") summarises an image's
coarse structure in bits that survive those edits, so near-identity becomes a small
Hamming distance between hashes.

The hash has 256 bits (the 16x16 lowest DCT frequencies), not the classic 64 (8x8).
Catalog photos are shot alike — one product on a white background, same framing — and at
64 bits thousands of *different* products sit within a few bits of each other: measured on
35,000 real catalog photos, the near-duplicate graph at distance 2 (of 64) already chains
2,000 unrelated images into one component, which would force them all into one split. At
256 bits, copies that are resized or re-encoded stay within ~18 bits while the graph at
24 bits stays in small components (``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache

import numpy as np
from PIL import Image

_SAMPLE_SIDE = 64  # the image is reduced to 64x64 before the DCT...
_HASH_SIDE = 16  # ...of which the 16x16 lowest frequencies make the 256 bits
HASH_BITS = _HASH_SIDE * _HASH_SIDE
HEX_DIGITS = HASH_BITS // 4
_WORDS = HASH_BITS // 64  # a hash is compared as four uint64 words

# Hashes are compared in square tiles of this side: a tile's XOR (8 MiB of uint64) stays
# near the CPU caches, and memory stays flat where all pairs of 40,000 hashes at once would
# take tens of GB.
_TILE = 512


@lru_cache(maxsize=1)
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix ``C``: ``C @ x`` transforms a column, ``C @ X @ C.T`` 2-D."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix


def phash(image: Image.Image) -> str:
    """The 256-bit DCT perceptual hash of ``image`` as 64 lowercase hex digits.

    Lanczos resampling averages the whole picture into the 64x64 sample (a nearest-pixel
    reduction would alias, and tiny edits would flip bits). Each of the 16x16 lowest
    frequencies becomes one bit, set when its coefficient is above the median of the 256,
    so half the bits are set whatever the image's brightness or contrast.
    """
    gray = image.convert("L").resize((_SAMPLE_SIDE, _SAMPLE_SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(gray, dtype=np.float64)
    dct = _dct_matrix(_SAMPLE_SIDE)
    low = (dct @ pixels @ dct.T)[:_HASH_SIDE, :_HASH_SIDE]
    bits = (low > np.median(low)).ravel()  # row-major: the DC term is the top bit
    return np.packbits(bits).tobytes().hex()


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def near_duplicate_groups(
    items: Sequence[tuple[str, str, str]], max_distance: int
) -> dict[str, str]:
    """Group ``(url, sha256, phash_hex)`` items into near-duplicate groups: ``url -> group``.

    Two images are linked when their bytes are identical (same sha256) or their hashes
    differ in at most ``max_distance`` bits; groups are the connected components of those
    links, so grouping is transitive (A~B and B~C put A and C together). Every URL gets a
    group, singletons included. A group's id is the smallest sha256 among its members,
    which depends only on the membership - not on input order, engine or run.
    """
    if max_distance < 0:
        raise ValueError("max_distance must be >= 0")
    count = len(items)
    groups = UnionFind(count)

    first_with_sha: dict[str, int] = {}
    for index, (_, sha256, _) in enumerate(items):
        groups.union(index, first_with_sha.setdefault(sha256, index))

    # Catalogs repeat exact hashes a lot (re-listed photos, placeholders); comparing each
    # distinct hash once, then linking its holders, keeps the quadratic part small.
    hashes = parse_hashes([phash_hex for _, _, phash_hex in items])
    distinct, first_index, holder_of = np.unique(
        hashes, axis=0, return_index=True, return_inverse=True
    )
    holder_of = holder_of.reshape(-1)
    for index, rep in enumerate(first_index[holder_of].tolist()):
        groups.union(index, rep)
    for left, right in _close_pairs(distinct, max_distance):
        for a, b in zip(first_index[left].tolist(), first_index[right].tolist(), strict=True):
            groups.union(a, b)

    smallest_sha: dict[int, str] = {}
    roots = [groups.find(index) for index in range(count)]
    for root, (_, sha256, _) in zip(roots, items, strict=True):
        if root not in smallest_sha or sha256 < smallest_sha[root]:
            smallest_sha[root] = sha256
    return {url: smallest_sha[root] for root, (url, _, _) in zip(roots, items, strict=True)}


def parse_hashes(hexes: Sequence[str]) -> np.ndarray:
    """Hex hashes as an ``(n, 4)`` uint64 array, parsed in one pass."""
    for value in hexes:
        if len(value) != HEX_DIGITS:
            raise ValueError(f"not a {HEX_DIGITS}-digit hex hash: {value!r}")
    words = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=">u8").astype(np.uint64)
    return words.reshape(len(hexes), _WORDS)


def _close_pairs(hashes: np.ndarray, max_distance: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Index pairs ``(i, j)``, ``i < j``, of hashes within ``max_distance`` bits, by tile.

    Only tiles on or above the diagonal are computed (half the work); XOR, popcount and
    the comparison run in numpy's C loops, and Python only sees the rare close pairs.
    """
    count = len(hashes)
    first = np.ascontiguousarray(hashes[:, 0])
    for row_start in range(0, count, _TILE):
        rows = first[row_start : row_start + _TILE, None]
        for col_start in range(row_start, count, _TILE):
            cols = first[None, col_start : col_start + _TILE]
            # A pair within max_distance over 256 bits is within it on any 64 of them, and
            # unrelated hashes differ in ~32 of every 64: the first word is a cheap filter
            # that leaves the full comparison to a few candidates.
            left, right = np.nonzero(np.bitwise_count(rows ^ cols) <= max_distance)
            if left.size == 0:
                continue
            left += row_start
            right += col_start
            distance = np.bitwise_count(hashes[left] ^ hashes[right]).sum(axis=1)
            keep = distance <= max_distance
            left, right = left[keep], right[keep]
            # A diagonal tile also holds each pair the other way round, and i == j.
            ahead = right > left
            yield left[ahead], right[ahead]


class UnionFind:
    """Disjoint sets over ``0..n-1`` with path halving (near-constant time per operation).

    The root of a set is its smallest member, so roots do not depend on link order."""

    def __init__(self, size: int) -> None:
        self._parent = list(range(size))

    def find(self, item: int) -> int:
        parent = self._parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def union(self, a: int, b: int) -> bool:
        """Join the sets of ``a`` and ``b``; True if they were two sets."""
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return False
        self._parent[max(root_a, root_b)] = min(root_a, root_b)
        return True
