"""How a version from another device joins a record's history: pure logic, no I/O.

Each record's history is a small graph. A version names its ``parents``: the heads the
writer knew when it wrote (one for an ordinary edit, several when an edit or a merge settles
a conflict). The *heads* are the versions nothing known descends from. The relay delivers
batches in the order they were stored, so a version's parents always arrive before it.

Rules, chosen so every device ends at the same value without asking the user:

* an incoming version that is known, or that a known version descends from, is old news;
* one head after it arrives: fast-forward to it;
* several heads while the version shown here is this device's own edit: the local edit wins
  here, and a *merge* version (keeping the local value, parents = all heads) is written and
  sent, so the other devices adopt the result instead of fighting over it;
* several heads otherwise (two devices merged the same conflict at once, or a third device
  is involved): show the head with the latest hybrid-logical-clock version. No new version
  is written, so merges cannot ping-pong.

Nothing is dropped: every edit that is not in the shown version's *lineage* (its ancestors
through ordinary edits and the kept side of merges) is a conflict record the user can view
and restore (a restore is an edit whose parents include the restored version, which puts it
back into the lineage).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from smallhold.store.versions import Op, Version


@dataclass(frozen=True)
class Outcome:
    """What to do after a version arrived: the new heads, what to show, whether to merge."""

    heads: tuple[str, ...]
    shown: str | None
    merge_keep: str | None = None  # write a merge keeping this version (local wins here)
    old_news: bool = False

    @property
    def fast_forward(self) -> bool:
        return not self.old_news and self.merge_keep is None and len(self.heads) == 1


def integrate(heads: Iterable[str], shown: Version | None, incoming: Version, *,
              superseded: bool, me: str) -> Outcome:
    """Place ``incoming`` among the record's current ``heads``.

    ``shown`` is the version this device displays now; ``superseded`` tells whether a known
    version already names ``incoming`` as a parent (the caller looks that up).
    """
    current = tuple(heads)
    shown_id = shown.version if shown else None
    if superseded or incoming.version in current:
        return Outcome(current, shown_id, old_news=True)
    new_heads = tuple(sorted({h for h in current if h not in incoming.parents}
                             | {incoming.version}))
    if len(new_heads) == 1:
        return Outcome(new_heads, incoming.version)
    if shown is not None and shown.version in new_heads and shown.origin == me \
            and shown.op != "merge":
        return Outcome(new_heads, shown.version, merge_keep=shown.version)
    return Outcome(new_heads, max(new_heads))


def lineage(versions: Mapping[str, Version], start: str) -> set[str]:
    """``start`` and what it carries forward: all parents of edits, the kept side of merges."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        vid = stack.pop()
        if vid in seen or vid not in versions:
            continue
        seen.add(vid)
        v = versions[vid]
        stack.extend([v.keep] if v.op == "merge" and v.keep else v.parents)
    return seen


def conflicts(versions: Mapping[str, Version], shown: str,
              heads: Iterable[str] = ()) -> list[Version]:
    """Edits that lost a conflict and were not restored since; oldest first.

    A loser is a side a merge did not keep, or a head that is not shown. Earlier edits on
    the losing side are not listed: their own device replaced them before the conflict.
    """
    def value_of(vid: str) -> str:
        seen: set[str] = set()
        while vid in versions and versions[vid].op == "merge" and vid not in seen:
            seen.add(vid)
            vid = versions[vid].keep or vid
        return vid

    losers = {value_of(h) for h in heads if h != shown}
    for v in versions.values():
        if v.op == "merge":
            losers |= {value_of(p) for p in v.parents if p != v.keep}
    kept = lineage(versions, shown)
    return sorted((versions[vid] for vid in losers - kept if vid in versions),
                  key=lambda v: v.version)


__all__ = ["Op", "Outcome", "Version", "conflicts", "integrate", "lineage"]
