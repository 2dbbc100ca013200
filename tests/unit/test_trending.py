"""The cold-start policy: sessions with no known item get what trended in the newest window
(within their category), and items no model knows enter lists through the same signal."""

import pandas as pd

from recops.config import load_config
from recops.data.trending import Trending, trending_from_events
from recops.serving.bench import synthetic_checkpoint
from recops.serving.cold_start import TRENDING, TrendingWatcher
from recops.serving.recommender import Recommender
from recops.serving.runtime import ServedModel
from recops.store import Store

DAY = 86400.0


def events() -> pd.DataFrame:
    """Item 1 is the all-time favourite; in the newest day items 7 and 8 (category b) and 5
    (category a) trend, and 999 is new to every model."""
    old = [(s, 1, 1_700_000_000.0 + s, "a") for s in range(50)]
    new_start = 1_700_000_000.0 + 10 * DAY
    recent = [(100 + s, 7, new_start + s, "b") for s in range(9)]
    recent += [(200 + s, 8, new_start + s, "b") for s in range(4)]
    recent += [(300 + s, 5, new_start + s, "a") for s in range(6)]
    recent += [(400 + s, 999, new_start + s, "b") for s in range(2)]
    return pd.DataFrame(old + recent, columns=["sequence_id", "item_id", "timestamp", "category"])


def test_trending_counts_only_the_newest_window_per_category():
    trending = trending_from_events(events(), hours=24)
    assert trending.items == [("7", 9.0), ("5", 6.0), ("8", 4.0), ("999", 2.0)]  # not item 1
    assert trending.by_category["b"] == [("7", 9.0), ("8", 4.0), ("999", 2.0)]
    assert trending.item_category["5"] == "a" and trending.events == 21
    assert Trending.from_json(trending.to_json()) == trending


def served(n_items: int = 20) -> ServedModel:
    config = load_config(overrides={"sasrec.max_len": 10, "sasrec.hidden": 16})
    return ServedModel(Recommender(synthetic_checkpoint(n_items, config)), "m:1", {"architecture": "sasrec"})


def test_unknown_sessions_get_the_trending_items_of_the_last_window(tmp_path):
    model = served()
    store = Store(tmp_path)
    store.write_text("serving/trending.json", trending_from_events(events(), hours=24).to_json())
    watcher = TrendingWatcher(store)
    try:
        assert watcher.check() and TRENDING.current is not None
        [cold, cold_b, known] = model.recommend_batch([["nope"], [999, "nope"], [3, 4]], k=3)
        # no known item: the window's trending list, its ids as the vocabulary writes them
        assert cold.fallback == "trending" and [i for i, _ in cold.items] == [7, 5, 8]
        # an item of category b (new to the model): category b's list, the seen item left out
        assert cold_b.fallback == "trending" and [i for i, _ in cold_b.items] == [7, 8]
        # a known session: the model's list, its last place given to the new trending item 999
        assert known.fallback is None and known.items[-1][0] == 999
        assert known.items[-1][1] == known.items[-2][1]  # scored as the item it replaced
    finally:
        TRENDING.current = None
    [cold] = model.recommend_batch([["nope"]], k=3)
    assert cold.fallback == "popular"  # no trending lists: all-time popularity, as before
