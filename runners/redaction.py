"""Redacting secret values from everything an attempt hands on: ``[redacted:<name>]``.

A task that reads a secret can print it. Whatever leaves the runner (stdout and stderr,
live log lines, the output JSON, the error text, and so the events and webhooks made from
them) passes through a ``Redactions`` first, so the value never reaches Postgres, Redis
or a client. Each value is looked for in the forms a task would print it in:

- the value itself, and without surrounding whitespace (a file with a final newline);
- base64 (standard and URL-safe) at each of the 3 byte alignments it can sit at in a
  longer encoded stream: the aligned middle of the encoding is the same whatever precedes
  and follows; the whole encoding with padding too, so ``base64 file`` leaves nothing.

On a stream (``StreamRedactor``), a value split across two writes is still found: the
last ``len(longest) - 1`` bytes of each chunk are held back until the next one (or the
end) shows whether a value starts there. Matches are leftmost, longest pattern first.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["Redactions", "StreamRedactor"]

# Below this length a base64 fragment would match ordinary text: not looked for.
MIN_ENCODED = 6


def _forms(value: bytes) -> set[bytes]:
    forms = {value, value.strip()}
    for candidate in list(forms):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms.add(encode(candidate))
            for skip in (0, 1, 2):
                body = candidate[skip:]
                body = body[: len(body) // 3 * 3]
                if body:
                    forms.add(encode(body))
    return {f for f in forms if f and (f in (value, value.strip()) or len(f) >= MIN_ENCODED)}


class Redactions:
    """The patterns of a set of named secret values; empty when there are none."""

    def __init__(self, values: Mapping[str, bytes]) -> None:
        replacement: dict[bytes, bytes] = {}
        # Longer values first: a value inside another is replaced as part of the longer.
        for name, value in sorted(values.items(), key=lambda kv: -len(kv[1])):
            for form in _forms(value):
                replacement.setdefault(form, f"[redacted:{name}]".encode())
        self._replacement = replacement
        patterns = sorted(replacement, key=len, reverse=True)
        self._regex = re.compile(b"|".join(re.escape(p) for p in patterns)) if patterns else None
        self.longest = len(patterns[0]) if patterns else 0

    def __bool__(self) -> bool:
        return self._regex is not None

    def _sub(self, match: re.Match[bytes]) -> bytes:
        return self._replacement[match.group()]

    def bytes(self, data: bytes) -> bytes:
        if self._regex is None:
            return data
        return self._regex.sub(self._sub, data)

    def text(self, text: str) -> str:
        if self._regex is None:
            return text
        return self.bytes(text.encode("utf-8", "surrogatepass")).decode("utf-8", "replace")

    def json(self, value: Any) -> Any:
        """``value`` with every string (keys included) redacted."""
        if self._regex is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {self.text(k): self.json(v) for k, v in value.items()}
        return value

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)


class StreamRedactor:
    """Redacts one byte stream chunk by chunk; ``flush`` at its end."""

    def __init__(self, redactions: Redactions) -> None:
        self._r = redactions
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        regex = self._r._regex
        if regex is None:
            return chunk
        data = self._held + chunk
        # A match starting before ``safe`` lies wholly within ``data``, whichever pattern
        # it is; one starting at or after it may continue in the next chunk.
        safe = len(data) - (self._r.longest - 1)
        out: list[bytes] = []
        pos = 0
        for match in regex.finditer(data):
            if match.start() >= safe:
                break
            out.append(data[pos : match.start()])
            out.append(self._r._sub(match))
            pos = match.end()
        keep = max(pos, safe)
        out.append(data[pos:keep])
        self._held = data[keep:]
        return b"".join(out)

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return self._r.bytes(held)
