"""Node and CPU masks as the kernel writes them in lists (``%*pbl``)."""

from __future__ import annotations

# the widest mask a list may name (bits); the kernel's is its nmaskbits
MAX_MASK_BITS = 1 << 16


def bitmap_parselist(text: str, nbits: int = MAX_MASK_BITS) -> list[int]:
    """``bitmap_parselist()``: ``0-3,8,10-11`` -> [0, 1, 2, 3, 8, 10, 11];
    an empty (or blank) text is the empty mask.  Raises ValueError, also for
    a bit at or beyond ``nbits`` (the kernel's -ERANGE)."""
    text = text.strip()
    out: list[int] = []
    if not text:
        return out
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"cannot parse {text!r} (expected e.g. '0-3,8')")
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a:
            raise ValueError(f"{part.strip()!r}: range runs backwards")
        if b >= nbits:
            raise ValueError(f"{part.strip()!r}: {b} is beyond the mask's {nbits} bits")
        out.extend(range(a, b + 1))
    return out
