"""The merge rules on hand-built histories (pure logic, no vault)."""

from __future__ import annotations

from smallhold.store.sync.merge import Version, conflicts, integrate, lineage


def v(vid: str, *parents: str, op: str = "put", origin: str = "a",
      keep: str | None = None) -> Version:
    return Version(vid, tuple(parents), op, '{"x": 1}', origin, 0.0, keep)  # type: ignore[arg-type]


def test_fast_forward_old_news_and_local_win() -> None:
    base = v("1-a")
    assert integrate(["1-a"], base, v("2-b", "1-a", origin="b"), superseded=False,
                     me="a").fast_forward
    assert integrate(["3-a"], v("3-a", "1-a"), v("2-b", "1-a", origin="b"), superseded=True,
                     me="a").old_news
    mine = v("3-a", "1-a")
    out = integrate(["3-a"], mine, v("2-b", "1-a", origin="b"), superseded=False, me="a")
    assert out.merge_keep == "3-a" and set(out.heads) == {"3-a", "2-b"}
    # a remote value shown here is not "local": the latest head is shown, no merge written
    out = integrate(["3-c"], v("3-c", "1-a", origin="c"), v("2-b", "1-a", origin="b"),
                    superseded=False, me="a")
    assert out.merge_keep is None and out.shown == "3-c"


def test_lineage_follows_the_kept_side_and_conflicts_list_only_losing_heads() -> None:
    history = {h.version: h for h in (
        v("1-a"), v("2-a", "1-a"), v("3-a", "2-a"),            # a edited twice
        v("2-b", "1-a", origin="b"), v("3-b", "2-b", origin="b"),  # b edited twice
        v("4-a", "3-a", "3-b", op="merge", keep="3-a"))}
    assert lineage(history, "4-a") == {"4-a", "3-a", "2-a", "1-a"}
    assert [c.version for c in conflicts(history, "4-a", ["4-a"])] == ["3-b"]
    history["5-b"] = v("5-b", "4-a", "3-b", origin="b")  # b restores its edit
    assert conflicts(history, "5-b", ["5-b"]) == []
