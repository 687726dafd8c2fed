"""Training-data hygiene, row by row: exact and near duplicates, and rows that leak a benchmark.

Evolved data repeats itself and can copy the benchmarks a model is later tested on. Each row
passes three checks, in this order, and the first that finds something removes it:

1. :class:`~autoevol_dspy.data.contamination.Decontaminator`: the row's instruction, context or
   response shares an n-gram of words (13 by default, as lm-evaluation-harness) with a benchmark item;
2. :class:`ExactDuplicates`: its prompt (instruction and context) has the words of a kept row's,
   once case, punctuation and spacing are set aside (:class:`~autoevol_dspy.data.normalise.Normaliser`);
3. :class:`NearDuplicates`: its prompt's word 3-grams are about as those of a kept row
   (MinHash LSH from ``datasketch``: estimated Jaccard similarity of at least ``near_threshold``, 0.65 by
   default: a 12-word instruction with 3 words appended is at 0.71, while math problems made from one
   template with other numbers mostly stay below it; GSM8K's train set loses 2 of 7,473 questions).

A removed row is never compared against again, so ``duplicate_of`` always names a kept row.
Memory grows with the kept rows only (a 16-byte digest each, and the LSH index), never with
the file: :func:`clean_rows` takes and gives one row at a time.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from autoevol_dspy.data.columns import TextColumns
from autoevol_dspy.data.normalise import Normaliser
from autoevol_dspy.errors import ConfigurationError

if TYPE_CHECKING:
    from datasketch import MinHash

    from autoevol_dspy.data.contamination import Contamination, Decontaminator

__all__ = [
    "DEFAULT_NEAR_THRESHOLD",
    "ExactDuplicates",
    "HygieneCounts",
    "NearDuplicates",
    "Removal",
    "RowHygiene",
    "Verdict",
    "clean_rows",
]

#: Rows whose prompts' word 3-grams have an estimated Jaccard similarity at least this high are near duplicates.
DEFAULT_NEAR_THRESHOLD = 0.65
#: Words in one shingle of the near-duplicate check.
SHINGLE_WORDS = 3
#: MinHash permutations: the estimate's standard error is about 0.04 at a similarity of 0.7.
NUM_PERM = 128
#: LSH bands x rows per band: a pair at similarity 0.65 shares a band with probability 0.86, at 0.7 0.94, at
#: 0.8 0.995, at 0.3 0.08 (then the estimate over all permutations rules it out); memory grows with the bands.
LSH_BANDS = (10, 4)

Reason = Literal["exact_duplicate", "near_duplicate", "contaminated"]


@dataclass(frozen=True)
class Removal:
    """Why a row was removed: the kept row it repeats (its index in the source), or the benchmark item it leaks."""

    reason: Reason
    duplicate_of: int | None = None
    similarity: float | None = None
    contaminated_by: Contamination | None = None

    def to_json(self) -> dict[str, Any]:
        """The fields a side file records (those that apply)."""
        found: dict[str, Any] = {"reason": self.reason}
        if self.duplicate_of is not None:
            found["duplicate_of"] = self.duplicate_of
        if self.similarity is not None:
            found["similarity"] = round(self.similarity, 3)
        if self.contaminated_by is not None:
            found["contaminated_by"] = self.contaminated_by.to_json()
        return found


class ExactDuplicates:
    """Prompts seen before, word for word after normalisation: a 16-byte digest per kept prompt."""

    def __init__(self) -> None:
        self._first: dict[bytes, int] = {}

    @staticmethod
    def key(words: Sequence[str]) -> bytes:
        return hashlib.blake2b(" ".join(words).encode("utf-8"), digest_size=16).digest()

    def find(self, key: bytes) -> int | None:
        """The index of the kept row with this key, if any."""
        return self._first.get(key)

    def add(self, key: bytes, index: int) -> None:
        self._first.setdefault(key, index)

    def __len__(self) -> int:
        return len(self._first)


class NearDuplicates:
    """Prompts about as an earlier kept one: MinHash of word 3-grams, an LSH index, then the estimate checked.

    The LSH index (``datasketch.MinHashLSH``, :data:`LSH_BANDS`) finds candidates generously,
    so that it misses few pairs at the threshold; a candidate counts only if the two MinHashes
    estimate a Jaccard similarity of at least ``threshold`` (all candidates at once, one array
    operation). The index and the signatures grow with the kept rows (about 4 KB each).
    """

    def __init__(self, *, threshold: float = DEFAULT_NEAR_THRESHOLD, num_perm: int = NUM_PERM,
                 bands: tuple[int, int] = LSH_BANDS, shingle_words: int = SHINGLE_WORDS) -> None:
        from datasketch import MinHash, MinHashLSH

        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise ConfigurationError(f"the near-duplicate threshold must be in (0, 1], got {threshold!r}")
        self.threshold = float(threshold)
        self.shingle_words = shingle_words
        self._prototype = MinHash(num_perm=num_perm, hashfunc=_shingle_hash)
        self._lsh = MinHashLSH(num_perm=num_perm, params=bands, hashfunc=_band_key)
        self._signatures = np.empty((1024, num_perm), dtype=self._prototype.hashvalues.dtype)
        self._indices = np.empty(1024, dtype=np.int64)
        self._count = 0

    def signature(self, words: Sequence[str]) -> MinHash:
        """The MinHash of the word 3-grams of ``words`` (the whole text, when it is shorter)."""
        minhash = self._prototype.copy()  # an empty MinHash sharing the prototype's permutations
        size = self.shingle_words
        shingles = {" ".join(words[start:start + size]) for start in range(max(1, len(words) - size + 1))}
        minhash.update_batch([shingle.encode("utf-8") for shingle in shingles])
        return minhash

    def find(self, signature: MinHash) -> tuple[int, float] | None:
        """The earliest kept row at least ``threshold`` similar, and the estimated similarity."""
        slots = np.fromiter(self._lsh.query(signature), dtype=np.int64)
        if not len(slots):
            return None
        similarities = (self._signatures[slots] == signature.hashvalues).mean(axis=1)
        close = np.flatnonzero(similarities >= self.threshold)
        if not len(close):
            return None
        first = close[np.argmin(slots[close])]  # slots grow with the source index: the earliest row
        return int(self._indices[slots[first]]), float(similarities[first])

    def add(self, signature: MinHash, index: int) -> None:
        slot = self._count
        if slot == len(self._indices):  # room for twice as many kept rows
            self._signatures = np.concatenate([self._signatures, np.empty_like(self._signatures)])
            self._indices = np.concatenate([self._indices, np.empty_like(self._indices)])
        self._lsh.insert(slot, signature, check_duplication=False)
        self._signatures[slot] = signature.hashvalues
        self._indices[slot] = index
        self._count += 1

    def __len__(self) -> int:
        return self._count


def _shingle_hash(shingle: bytes) -> int:
    """A shingle as a 32-bit number, the same in every process (CRC-32: several times faster than
    datasketch's default SHA-1, and MinHash mixes the bits before it permutes them)."""
    return zlib.crc32(shingle)


def _band_key(band: bytes) -> int:
    """A band of a signature as a small int key of the LSH index (the index lives in this process only)."""
    return hash(band)


class HygieneCounts(BaseModel):
    """What a clean did: rows in, rows removed by reason (contaminated ones by benchmark file), rows out."""

    rows_in: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    contaminated: dict[str, int] = Field(default_factory=dict, description="rows removed, by benchmark file")
    rows_out: int = 0

    @property
    def removed(self) -> int:
        return self.rows_in - self.rows_out

    def add(self, removal: Removal | None) -> None:
        """Count one row."""
        self.rows_in += 1
        if removal is None:
            self.rows_out += 1
        elif removal.reason == "exact_duplicate":
            self.exact_duplicates += 1
        elif removal.reason == "near_duplicate":
            self.near_duplicates += 1
        else:
            name = removal.contaminated_by.benchmark if removal.contaminated_by else "?"
            self.contaminated[name] = self.contaminated.get(name, 0) + 1

    def describe(self) -> str:
        """One line: ``1000 rows in, 12 exact + 5 near duplicates, 3 contaminated (bench.jsonl 3), 980 out``."""
        leaks = sum(self.contaminated.values())
        by_bench = ", ".join(f"{name} {count}" for name, count in sorted(self.contaminated.items()))
        return (f"{self.rows_in} rows in, {self.exact_duplicates} exact + {self.near_duplicates} near duplicates, "
                f"{leaks} contaminated" + (f" ({by_bench})" if by_bench else "") + f", {self.rows_out} rows out")


@dataclass(frozen=True)
class Verdict:
    """One source row (``index`` counts from 0), and why it was removed (None: kept)."""

    index: int
    row: Any
    removal: Removal | None


@dataclass
class RowHygiene:
    """The checks one clean runs, with their memory of kept rows and the counts so far.

    Rows ``passes`` says yes to are kept unchecked and never compared against: an evolution's
    failed rows, which a lineage file records but no training set holds."""

    columns: TextColumns
    dedup: bool = False
    near_threshold: float = DEFAULT_NEAR_THRESHOLD
    decontaminator: Decontaminator | None = None
    passes: Callable[[Any], bool] | None = None
    counts: HygieneCounts = field(default_factory=HygieneCounts)
    normaliser: Normaliser = field(default_factory=Normaliser)

    def __post_init__(self) -> None:
        self.exact = ExactDuplicates() if self.dedup else None
        self.near = NearDuplicates(threshold=self.near_threshold) if self.dedup else None

    def check(self, index: int, row: Any) -> Removal | None:
        """Why row ``index`` goes (None: it stays, and later rows are compared with it); counted."""
        removal = self._check(index, row)
        self.counts.add(removal)
        return removal

    def _check(self, index: int, row: Any) -> Removal | None:
        if self.passes is not None and self.passes(row):
            return None
        texts = self.columns.texts(row)
        if self.decontaminator is not None:
            found = self.decontaminator.find(texts.all(), self.normaliser)
            if found is not None:
                return Removal("contaminated", contaminated_by=found)
        if self.exact is None or self.near is None:
            return None
        words = self.normaliser.words(texts.prompt())
        if not words:  # nothing to compare: an empty prompt is not a duplicate of anything
            return None
        key = self.exact.key(words)
        first = self.exact.find(key)
        if first is not None:
            return Removal("exact_duplicate", duplicate_of=first)
        signature = self.near.signature(words)
        near = self.near.find(signature)
        if near is not None:
            return Removal("near_duplicate", duplicate_of=near[0], similarity=near[1])
        self.exact.add(key, index)
        self.near.add(signature, index)
        return None


def clean_rows(rows: Iterable[Any], hygiene: RowHygiene) -> Iterator[Verdict]:
    """Each row with its verdict, one at a time and in order (``hygiene.counts`` counts them)."""
    for index, row in enumerate(rows):
        yield Verdict(index, row, hygiene.check(index, row))
