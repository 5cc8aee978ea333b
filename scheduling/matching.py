"""Give each requirement its own resource: bipartite matching in preference order."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def assign(
    options: Sequence[Sequence[int]], usable: Callable[[int], bool]
) -> tuple[int, ...] | None:
    """One distinct usable resource per requirement, or None if no such choice exists.

    Each requirement takes its first usable option (options are in preference order);
    when a later requirement needs a resource already taken, the earlier holder is moved
    along an augmenting path (Kuhn's algorithm), so the answer is found whenever one exists.
    """
    owner: dict[int, int] = {}

    def place(req: int, seen: set[int]) -> bool:
        for res in options[req]:
            if res in seen or not usable(res):
                continue
            seen.add(res)
            holder = owner.get(res)
            if holder is None or place(holder, seen):
                owner[res] = req
                return True
        return False

    for req in range(len(options)):
        if not place(req, set()):
            return None
    chosen = [0] * len(options)
    for res, req in owner.items():
        chosen[req] = res
    return tuple(chosen)
