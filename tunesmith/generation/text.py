"""A row's reply as text: token by token, cut at EOS or a stop string, with what is safe to stream so far.

Decoding is incremental (the prefix/read offsets of TGI's `decode_token`): each new token costs one decode of a
few tokens, not of the whole reply, so a 2,000-token stream stays linear. Text is held back while it could still
be the start of a stop string or ends inside a multi-byte character; a stop string itself is never sent.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"  # what a decode of half a multi-byte character ends with


class RowText:
    def __init__(self, tokenizer: Any, stop: list[str], eos: set[int]) -> None:
        self.tokenizer, self.stop, self.eos = tokenizer, [s for s in stop if s], eos
        self.tokens: list[int] = []  # generated, EOS excluded
        self.generated = 0  # every token the model produced for this row, EOS included: what it is billed
        self.text = ""  # decoded so far (may end with a partial character)
        self.sent = 0  # characters handed to the stream
        self.finish_reason: str | None = None  # "stop" | "length" once finished
        self._prefix, self._read = 0, 0

    def push(self, token: int) -> None:
        """Take the next token; sets finish_reason "stop" at EOS or once the text contains a stop string."""
        self.generated += 1
        if token in self.eos:
            self.finish_reason = "stop"
            return
        self.tokens.append(token)
        if self.stop or self._streaming:
            self._decode_new()
            if self.stop and self._cut() is not None:
                self.finish_reason = "stop"

    _streaming = False  # set by the engine for a streaming row: then text is kept up to date every token

    def stream(self) -> None:
        self._streaming = True

    def ready(self) -> str:
        """The new text that can go to the client now (nothing of a possible stop string or partial character)."""
        cut = self._cut()
        if cut is not None:
            end = cut
        elif self.finish_reason is not None:
            end = len(self.final_text())
        else:
            end = len(self.text) - self._held_back()
        if end <= self.sent:
            return ""
        piece = (self.final_text() if self.finish_reason else self.text)[self.sent:end]
        self.sent = end
        return piece

    def final_text(self) -> str:
        """The reply as the client gets it: a full decode, cut before the first stop string."""
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        hits = [text.find(s) for s in self.stop if s in text]
        return text[: min(hits)] if hits else text

    def _decode_new(self) -> None:
        # decode from a few tokens back so the tokenizer sees word boundaries (leading spaces), then keep the diff
        before = self.tokenizer.decode(self.tokens[self._prefix:self._read], skip_special_tokens=True)
        after = self.tokenizer.decode(self.tokens[self._prefix:], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith(REPLACEMENT):
            self.text += after[len(before):]
            self._prefix, self._read = self._read, len(self.tokens)

    def _cut(self) -> int | None:
        hits = [self.text.find(s) for s in self.stop if s in self.text]
        return min(hits) if hits else None

    def _held_back(self) -> int:
        hold = 0
        for stop in self.stop:
            for n in range(min(len(stop) - 1, len(self.text)), 0, -1):
                if self.text.endswith(stop[:n]):
                    hold = max(hold, n)
                    break
        return hold
