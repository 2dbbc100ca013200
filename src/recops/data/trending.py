"""Trending items: popularity over the newest window of events, not all time.

The cold-start policy of the service (:mod:`recops.serving.runtime`): a session with no item
the model knows is answered with the trending items, within the category of its items when
events carry a ``category`` and the session's items have one, else overall (``fallback:
"trending"``). Items no model knows yet enter lists the same way: the last ``new_item_slots``
places of a model's list go to the top trending items outside its vocabulary, until a model
trained on them knows them.

The window ends at the newest event and spans ``hours`` before it; the lists keep the ``top``
items. Each cycle writes the current lists to ``<store>/serving/trending.json`` (whole, like
every store write); servers read it when its stamp changes. No trending file: the model's
all-time popularity answers, as before (``fallback: "popular"``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

TRENDING_KEY = "serving/trending.json"


@dataclass(frozen=True)
class Trending:
    window_end: float  # epoch seconds of the newest event
    hours: float
    items: list[tuple[str, float]]  # (item id as text, events in the window), most first
    by_category: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    item_category: dict[str, str] = field(default_factory=dict)  # of the items above
    events: int = 0  # in the window
    new_item_slots: int = 1  # last places of a model's list given to trending items it does not know

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Trending:
        raw = json.loads(text)
        return cls(
            float(raw["window_end"]),
            float(raw["hours"]),
            [(str(i), float(s)) for i, s in raw["items"]],
            {str(c): [(str(i), float(s)) for i, s in rows] for c, rows in raw.get("by_category", {}).items()},
            {str(i): str(c) for i, c in raw.get("item_category", {}).items()},
            int(raw.get("events", 0)),
            int(raw.get("new_item_slots", 1)),
        )

    def for_session(self, session: list[Any]) -> list[tuple[str, float]]:
        """The trending list for a session: its items' most frequent category, else overall."""
        categories = [self.item_category[str(item)] for item in session if str(item) in self.item_category]
        if categories:
            category = pd.Series(categories).mode().iloc[0]
            listed = self.by_category.get(category, [])
            if listed:
                return listed
        return self.items


def trending_from_events(
    events: pd.DataFrame, hours: float, top: int = 200, new_item_slots: int = 1
) -> Trending:
    """Trending lists of validated ``events`` over the ``hours`` before the newest event."""
    if events.empty:
        return Trending(0.0, hours, [], new_item_slots=new_item_slots)
    end = float(events["timestamp"].max())
    recent = events[events["timestamp"] > end - hours * 3600]
    counts = recent["item_id"].astype(str).value_counts()
    items = [(str(item), float(count)) for item, count in counts.iloc[:top].items()]
    by_category: dict[str, list[tuple[str, float]]] = {}
    item_category: dict[str, str] = {}
    if "category" in recent.columns:
        pairs = recent.assign(item=recent["item_id"].astype(str), category=recent["category"].astype(str))
        item_category = pairs.drop_duplicates("item", keep="last").set_index("item")["category"].to_dict()
        for category, group in pairs.groupby("category", sort=True):
            top_items = group["item"].value_counts().iloc[:top]
            by_category[str(category)] = [(str(item), float(count)) for item, count in top_items.items()]
        listed = {item for item, _ in items} | {i for rows in by_category.values() for i, _ in rows}
        item_category = {item: cat for item, cat in item_category.items() if item in listed}
    return Trending(end, hours, items, by_category, item_category, len(recent), new_item_slots)
