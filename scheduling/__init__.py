"""The pure scheduling core: availability and allocation tokens, with no I/O.

All instants are integer epoch seconds and spans are half-open `[start, end)`; callers
convert at the edges, so the arithmetic here stays exact and cheap.
"""
