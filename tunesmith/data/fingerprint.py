"""Small fingerprints of an example, so duplicate detection keeps hashes, never examples.

Three 64-bit hashes (exact content, content after normalising case/whitespace/punctuation, and the prompt
alone) plus two 32-value MinHash signatures over word bigrams for near-duplicates (Jaccard similarity): one of
the turns that vary (user, assistant, tool) and one of the system prompt. Two examples are near duplicates
when both are similar: a long system prompt most of a file shares (a database schema, a policy) would
otherwise make every pair look alike.
All hashes are stable across processes (no Python `hash`), so splits and reports are reproducible.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from tunesmith.conversation import Conversation

N_PERMUTATIONS = 32
BANDS, ROWS = 8, 4  # LSH: candidates share one band of 4 values; catches ~98% of pairs at Jaccard 0.8
NEAR_THRESHOLD = 0.8
_MAX_REPRESENTATIVES = 256  # distinct signatures compared per bucket; buckets are tiny unless data repeats
_CHUNK = 512
# Permutations h(x) = (a*x + b) mod p over 31-bit shingle ids, p = 2^31 - 1: a*x < 2^62 fits in uint64 and
# wraps p many times, which is what makes each h a different shuffle.
_PRIME = np.uint64((1 << 31) - 1)
_rng = np.random.default_rng(20240607)  # fixed: signatures must be comparable across runs
_A = _rng.integers(1, (1 << 31) - 1, N_PERMUTATIONS, dtype=np.uint64)[:, None]
_B = _rng.integers(0, (1 << 31) - 1, N_PERMUTATIONS, dtype=np.uint64)[:, None]
_PUNCTUATION = re.compile(r"[^\w\s]+")


@dataclass
class Fingerprint:
    exact: int  # canonical JSON of the example
    normalized: int  # every message's text, normalised
    prompt: int  # the normalised text before the last assistant turn
    signature: np.ndarray  # (N_PERMUTATIONS,) uint32 MinHash of the non-system turns' word bigrams
    system_signature: np.ndarray  # the same of the system prompt (of "" when there is none)


def normalize_text(text: str) -> str:
    """Lower case, NFKC, punctuation dropped, whitespace collapsed: what a reader would call 'the same text'."""
    return " ".join(_PUNCTUATION.sub(" ", unicodedata.normalize("NFKC", text).lower()).split())


def hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def normalized_messages(conversation: Conversation) -> list[str]:
    """Each message as role-tagged normalised text (tool calls included)."""
    out = []
    for m in conversation.messages:
        calls = " ".join(f"{c.name} {c.arguments}" for c in m.tool_calls)
        out.append(f"{m.role} {normalize_text((m.content or '') + ' ' + calls)}")
    return out


def fingerprint(conversation: Conversation) -> Fingerprint:
    parts = normalized_messages(conversation)
    normalized = " ".join(parts)
    last = conversation.last_assistant_index()
    prompt = " ".join(parts[:last]) if last is not None else normalized
    exact = json.dumps(conversation.to_openai(), sort_keys=True, ensure_ascii=False)
    system = " ".join(p for p, m in zip(parts, conversation.messages) if m.role == "system")
    varying = " ".join(p for p, m in zip(parts, conversation.messages) if m.role != "system")
    return Fingerprint(hash64(exact), hash64(normalized), hash64(prompt), minhash_signature(varying),
                       minhash_signature(system))


def minhash_signature(normalized: str) -> np.ndarray:
    """MinHash of the word bigrams of a normalised text (single spaces between words)."""
    x = _word_bigram_hashes(normalized) >> np.uint64(33)  # 31-bit shingle ids
    return ((_A * x[None, :] + _B) % _PRIME).min(axis=1).astype(np.uint32)


def _word_bigram_hashes(text: str) -> np.ndarray:
    """64-bit hashes of consecutive word pairs, computed in numpy: a polynomial hash per word from prefix
    sums (uint64 arithmetic wraps, which is the modulus), then pairs combined. Stable across processes."""
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    if len(data) == 0:
        return np.zeros(1, dtype=np.uint64)
    powers, inverse_powers = _powers(len(data) + 1)
    prefix = np.zeros(len(data) + 1, dtype=np.uint64)
    np.cumsum((data.astype(np.uint64) + np.uint64(1)) * powers[:len(data)], out=prefix[1:])
    spaces = np.flatnonzero(data == 32)
    starts = np.empty(len(spaces) + 1, dtype=np.intp)
    ends = np.empty_like(starts)
    starts[0], starts[1:], ends[:-1], ends[-1] = 0, spaces + 1, spaces, len(data)
    words = _mix((prefix[ends] - prefix[starts]) * inverse_powers[starts])  # position-free hash of each word
    if len(words) < 2:
        return words
    return _mix(words[:-1] * _PAIR + words[1:])


def _mix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: every input bit reaches every output bit (short words hash small)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


_BASE = 0x100000001B3  # odd, so it has an inverse modulo 2^64
_PAIR = np.uint64(0x9E3779B97F4A7C15)
_power_cache: list[np.ndarray] = [np.ones(1, np.uint64), np.ones(1, np.uint64)]


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE^i and BASE^-i modulo 2^64 for i < n (cached, grown on demand)."""
    if len(_power_cache[0]) < n:
        size = max(n, 2 * len(_power_cache[0]), 4096)
        with np.errstate(over="ignore"):
            _power_cache[0] = np.cumprod(np.r_[1, np.full(size - 1, _BASE)].astype(np.uint64), dtype=np.uint64)
            inverse = pow(_BASE, -1, 1 << 64)
            _power_cache[1] = np.cumprod(np.r_[1, np.full(size - 1, inverse)].astype(np.uint64), dtype=np.uint64)
    return _power_cache[0], _power_cache[1]


def near_duplicate_pairs(signatures: np.ndarray, threshold: float = NEAR_THRESHOLD,
                         system_signatures: np.ndarray | None = None) -> dict[int, tuple[int, float]]:
    """For each example (row) that nearly repeats an earlier one: {later row: (earliest such row, similarity)}.
    With `system_signatures`, the system prompts must be similar too (the similarity reported is that of
    `signatures`, the turns that vary).

    LSH banding keeps it near-linear: only rows sharing a whole band of the signature are compared."""
    n = len(signatures)
    if system_signatures is not None:  # compared side by side: each half must pass the threshold
        signatures = np.hstack([signatures, system_signatures])
    found: dict[int, tuple[int, float]] = {}
    if n < 2:
        return found
    for band in range(BANDS):
        chunk = np.ascontiguousarray(signatures[:, band * ROWS:(band + 1) * ROWS])  # bands of the varying turns
        keys = chunk.view(np.dtype((np.void, chunk.dtype.itemsize * ROWS))).ravel()
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], n]
        for s, e in zip(starts, ends):
            if e - s >= 2:
                _match_bucket(signatures, np.sort(order[s:e]), threshold, found)
    return found


def _match_bucket(signatures: np.ndarray, rows: np.ndarray, threshold: float,
                  found: dict[int, tuple[int, float]]) -> None:
    """Match each row of one LSH bucket (rows in file order) to the earliest earlier row it nearly repeats."""
    reps = rows
    if len(rows) > 8:  # big buckets are mostly repeats: compare against each distinct signature once
        _, first = np.unique(signatures[rows], axis=0, return_index=True)
        reps = rows[np.sort(first)][:_MAX_REPRESENTATIVES]  # earliest row of each distinct signature
    rep_signatures = signatures[reps]
    for start in range(0, len(rows), _CHUNK):  # chunks bound the (rows × reps × 32) comparison in memory
        chunk = rows[start:start + _CHUNK]
        equal = (signatures[chunk][:, None, :] == rep_signatures[None, :, :]).reshape(
            len(chunk), len(reps), -1, N_PERMUTATIONS).mean(axis=3)  # (rows, reps, parts)
        sims = equal[:, :, 0]
        match = (equal >= threshold).all(axis=2) & (reps[None, :] < chunk[:, None])
        best = match.argmax(axis=1)  # reps are in file order: the first match is the earliest row
        for k in np.flatnonzero(match.any(axis=1)):
            row, rep = int(chunk[k]), int(reps[best[k]])
            if row not in found or found[row][0] > rep:
                found[row] = (rep, float(sims[k, best[k]]))
