"""Brand names recovered from product display names, learned from the catalog itself.

Catalogs such as "Fashion Product Images" have no brand column: the brand is the leading
words of the display name ("Lino Perros Women Brown Handbag"). How many words differs per
brand and no brand list is available, so the catalog is its own evidence. Two signals
decide whether the next word still belongs to the brand:

* **Agreement**: nearly every name that starts like this continues with the same word.
  "Lino" is always followed by "Perros", so the brand is "Lino Perros"; "Turtle" is
  followed by many words, so "Turtle Check Men Navy Blue Shirt" is a check shirt by Turtle.
* **Audience position**: names read "<brand> <audience> <item>" ("Baggit Women Brown
  Handbag"), so the words right before "Men"/"Women" are where a brand ends. A first word
  that is practically never followed by an audience word is not a brand on its own: "Red"
  splits into "Red Tape", "Red Chief" and "Red Rose", each of which is followed by one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

# Words that open the "who is it for" part of a name. Compared after lowercasing and
# dropping apostrophes, so "Men's", "Mens" and "MEN" all match.
AUDIENCE_WORDS = frozenset(
    {
        "men", "mens", "man",
        "women", "womens", "woman", "ladies", "lady",
        "unisex",
        "boys", "boy", "girls", "girl", "kids", "kid", "children", "childrens",
        "infant", "infants", "toddler", "toddlers", "teen", "teens",
    }
)  # fmt: skip

Prefix = tuple[str, ...]


def _key(word: str) -> str:
    """A word as compared: case and apostrophes do not distinguish spellings."""
    return word.lower().replace("'", "").replace("’", "")


class BrandExtractor:
    """Finds the brand at the start of a display name, using counts over the whole catalog.

    A name's brand starts as its first word and grows one word at a time. The next word is
    taken when it is not an audience word, the longer prefix is shared by at least
    ``min_support`` names, and either

    * at least ``ratio`` of the names sharing the shorter prefix share the longer one, or
    * the shorter prefix is followed by an audience word in at most ``1 - ratio`` of its
      names while the longer one is in at least ``ratio`` of its names.

    Counting ignores case; the brand comes back in the catalog's most frequent spelling.
    """

    def __init__(
        self,
        names: Iterable[str],
        *,
        min_support: int = 3,
        ratio: float = 0.8,
        max_words: int = 5,
    ) -> None:
        if min_support < 1 or not 0.5 < ratio <= 1 or max_words < 1:
            raise ValueError("need min_support >= 1, 0.5 < ratio <= 1 and max_words >= 1")
        self.min_support = min_support
        self.ratio = ratio
        self.max_words = max_words
        self._names: Counter[Prefix] = Counter()  # names starting with the prefix
        self._audience_next: Counter[Prefix] = Counter()  # ... and then an audience word
        self._spellings: defaultdict[Prefix, Counter[str]] = defaultdict(Counter)
        for name in names:
            # One word past the longest brand, to see what follows it.
            words = (name or "").split()[: max_words + 1]
            keys = tuple(_key(word) for word in words)
            for length in range(1, min(len(words), max_words) + 1):
                prefix = keys[:length]
                self._names[prefix] += 1
                self._spellings[prefix][" ".join(words[:length])] += 1
                if length < len(keys) and keys[length] in AUDIENCE_WORDS:
                    self._audience_next[prefix] += 1

    def brand(self, name: str | None) -> str | None:
        """The brand that ``name`` starts with, or None when it opens with an audience word."""
        words = (name or "").split()[: self.max_words]
        keys = tuple(_key(word) for word in words)
        if not keys or keys[0] in AUDIENCE_WORDS:
            return None
        length = 1
        while length < len(keys) and self._continues(keys[: length + 1]):
            length += 1
        spellings = self._spellings.get(keys[:length])
        if not spellings:  # a name the catalog never contained: trust its own spelling
            return " ".join(words[:length])
        # most_common() breaks ties by first occurrence, which keeps this deterministic.
        return spellings.most_common(1)[0][0]

    def _continues(self, longer: Prefix) -> bool:
        """Whether the brand runs on into the last word of ``longer``."""
        if longer[-1] in AUDIENCE_WORDS:
            return False
        shorter = longer[:-1]
        shared = self._names[longer]
        if shared < self.min_support:
            return False
        if shared >= self.ratio * self._names[shorter]:
            return True
        return (
            self._audience_share(shorter) <= 1 - self.ratio
            and self._audience_share(longer) >= self.ratio
        )

    def _audience_share(self, prefix: Prefix) -> float:
        """The fraction of names starting with ``prefix`` whose next word is an audience word."""
        total = self._names[prefix]
        return self._audience_next[prefix] / total if total else 0.0
