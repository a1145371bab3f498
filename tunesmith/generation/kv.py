"""The running batch's KV cache: rows join (prefilled apart, then merged in) and leave between decode steps.

Layout: `transformers`' DynamicCache, one [rows, heads, time, dim] tensor per layer, every row right-aligned to
the same physical length with a 2-D attention mask marking its real positions, and explicit position ids per
row. Positions are rotated into the keys when they are computed, so padding anywhere (left of a short row, or
between a cached prefix and a tail) changes nothing but the mask: a row's attention sees exactly its own tokens
at their own positions, as it would alone. Joining pads the shorter side on the left; leaving drops the row and
then any column no remaining row uses.

Each layer is a GrowingLayer: its keys and values are views into a buffer with room to grow, so a decode step
writes its one new position in place. transformers' DynamicLayer copies the whole cache with torch.cat at every
step, which was 46% of a decode step at 16 rows over 600 positions (SmolLM2-135M, 2-core CPU).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class GrowingLayer(DynamicLayer):
    """A DynamicLayer whose keys/values are the first `length` positions of a larger buffer."""

    buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        have = self.get_seq_length()
        need = have + key_states.shape[-2]
        if not self._views_of_buffers() or need > self.buffers[0].shape[-2]:
            # Someone set keys/values to other tensors (a merge, a row selection), or the buffer is full: copy
            # once into a new buffer with headroom, so the next steps write in place.
            self.buffers = (self._grown(self.keys, key_states, need), self._grown(self.values, value_states, need))
        keys, values = self.buffers
        keys[:, :, have:need].copy_(key_states)
        values[:, :, have:need].copy_(value_states)
        self.keys, self.values = keys[:, :, :need], values[:, :, :need]
        return self.keys, self.values

    def _views_of_buffers(self) -> bool:
        if self.buffers is None or self.keys is None or self.keys.numel() == 0:
            return False
        return all(t.data_ptr() == b.data_ptr() and t.shape[:2] == b.shape[:2] and t.stride() == b.stride()
                   for t, b in zip((self.keys, self.values), self.buffers))

    @staticmethod
    def _grown(old: torch.Tensor, new: torch.Tensor, need: int) -> torch.Tensor:
        buffer = new.new_empty((new.shape[0], new.shape[1], room_for(need), new.shape[3]))
        have = old.shape[-2] if old.numel() else 0
        if have:
            buffer[:, :, :have].copy_(old)
        return buffer


def room_for(length: int) -> int:
    """A buffer's length for `length` positions: a copy every 64+ steps instead of every step."""
    return length + max(64, length // 4)


def new_cache() -> DynamicCache:
    """An empty cache whose layers grow in place."""
    cache = DynamicCache()
    cache.layer_class_to_replicate = GrowingLayer
    return cache


@dataclass
class KVState:
    cache: DynamicCache
    mask: torch.Tensor  # [rows, time] 1 where a row has a real token
    positions: torch.Tensor  # [rows] the position id of each row's next token

    @property
    def rows(self) -> int:
        return int(self.mask.shape[0])

    @property
    def length(self) -> int:
        return int(self.mask.shape[1])


def cache_argument(model: Any) -> str:
    """transformers 5.x names the KV-cache argument `cache`; older releases `past_key_values`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def plain_layers(cache: Any) -> bool:
    """Whether every layer is a full-attention DynamicLayer, the only kind whose rows can be moved around.

    A sliding-window layer drops its oldest entries by count, which padding would shift; a recurrent layer has no
    per-token entries at all.
    """
    return isinstance(cache, DynamicCache) and all(type(layer) in (DynamicLayer, GrowingLayer) for layer in cache.layers)


def layer_tensors(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def set_layer_tensors(cache: DynamicCache, tensors: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for layer, (keys, values) in zip(cache.layers, tensors):
        layer.keys, layer.values = keys, values


def merge(a: KVState | None, b: KVState) -> KVState:
    """One state holding a's rows then b's, the shorter one padded on the left."""
    if a is None or a.rows == 0:
        return b
    length = max(a.length, b.length)

    def widen(t: torch.Tensor, have: int, dim: int) -> torch.Tensor:
        if have == length:
            return t
        pad = [0, 0] * (t.dim() - 1 - dim) + [length - have, 0]  # F.pad counts dims from the last one
        return F.pad(t, pad)

    for layer, (ka, va), (kb, vb) in zip(a.cache.layers, layer_tensors(a.cache), layer_tensors(b.cache)):
        # Straight into a buffer with headroom: the next decode steps write in place, no second copy.
        layer.buffers = (stacked(ka, kb, length), stacked(va, vb, length))
        layer.keys, layer.values = (t[:, :, :length] for t in layer.buffers)
    mask = torch.cat([widen(a.mask, a.length, 1), widen(b.mask, b.length, 1)])
    return KVState(a.cache, mask, torch.cat([a.positions, b.positions]))


def stacked(a: torch.Tensor, b: torch.Tensor, length: int) -> torch.Tensor:
    """a's rows then b's in one [rows, heads, room, dim] buffer, each right-aligned to `length` over zeros."""
    out = a.new_empty((a.shape[0] + b.shape[0], a.shape[1], room_for(length), a.shape[3]))
    for part, t in ((out[: a.shape[0]], a), (out[a.shape[0]:], b)):
        have = t.shape[2]
        part[:, :, : length - have].zero_()  # padding is masked, but must be finite: 0 x NaN is NaN
        part[:, :, length - have: length].copy_(t)
    return out


def keep_rows(state: KVState, keep: list[int]) -> KVState:
    """A new state with only the rows `keep` (in that order), without the columns none of them uses.

    The old state is left as it was: failure isolation runs single rows on copies and carries on with the rest.
    """
    index = torch.tensor(keep, dtype=torch.long, device=state.mask.device)
    mask = state.mask.index_select(0, index)
    used = mask.any(dim=0).nonzero()
    start = int(used[0]) if len(used) else mask.shape[1]
    tensors = [(k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:])
               for k, v in layer_tensors(state.cache)]
    return KVState(cache_from(tensors), mask[:, start:], state.positions.index_select(0, index))


def cache_from(tensors: list[tuple[torch.Tensor, torch.Tensor]]) -> DynamicCache:
    """A DynamicCache holding these per-layer (keys, values) as they are (no copy)."""
    cache = new_cache()
    for keys, values in tensors:
        layer = GrowingLayer()
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values
        cache.layers.append(layer)
    return cache


def truncate(state: KVState) -> None:
    """Cut every layer back to the mask's length: a forward that raised may have appended to some layers."""
    set_layer_tensors(state.cache, [(k[:, :, : state.length], v[:, :, : state.length])
                                    for k, v in layer_tensors(state.cache)])


def row_cache(state: KVState, row: int) -> DynamicCache:
    """A batch-1 copy of one row's real positions, contiguous from position 0: what a prefix store keeps."""
    real = state.mask[row].nonzero().squeeze(1)
    return cache_from([(k[row:row + 1, :, real], v[row:row + 1, :, real]) for k, v in layer_tensors(state.cache)])


def repeat_prefix(prefix: DynamicCache, tokens: int, rows: int) -> DynamicCache:
    """A new cache with the first `tokens` positions of a batch-1 prefix cache, once per row."""
    return cache_from([(k[:, :, :tokens].expand(rows, -1, -1, -1).contiguous(),
                        v[:, :, :tokens].expand(rows, -1, -1, -1).contiguous()) for k, v in layer_tensors(prefix)])
