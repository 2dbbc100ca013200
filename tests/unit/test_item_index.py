"""The int8 item index finds exactly the top k that scoring the whole catalogue finds, and the
checkpoint stores large integer vocabularies as tensors (format 2) while still reading format 1."""

import numpy as np
import pytest
import torch

from recops.config import load_config
from recops.data.interactions import ItemVocab
from recops.models import build_model
from recops.serving import item_index
from recops.serving.bench import bench_sessions
from recops.serving.item_index import BLOCK, QuantizedItemIndex
from recops.serving.recommender import Recommender
from recops.training.checkpoint import Checkpoint

pytestmark = pytest.mark.unit

N_ITEMS = 12 * BLOCK - 123  # 12 blocks, the last one partly padding


def _table(rng: np.random.Generator, n: int, dims: int) -> torch.Tensor:
    """Item vectors whose dimensions have very different ranges (one scale per dimension)."""
    table = rng.standard_normal((n + 1, dims)) * rng.uniform(0.01, 1.0, dims)
    table[0] = 0
    return torch.as_tensor(table, dtype=torch.float32)


def test_every_approximate_score_is_within_the_bound_and_the_top_k_are_candidates():
    rng = np.random.default_rng(0)
    table = _table(rng, N_ITEMS, 16)
    index = QuantizedItemIndex(table)
    for _ in range(5):
        hidden = rng.standard_normal(16).astype(np.float32) * 3
        exact = (table[1:] @ torch.from_numpy(hidden)).numpy()
        excluded = rng.integers(1, N_ITEMS + 1, 30)
        candidates = index.candidates(hidden, 10, excluded)
        approximate = index._scores[:N_ITEMS].copy()
        eligible = np.setdiff1d(np.arange(1, N_ITEMS + 1), excluded)
        assert np.all(np.abs(approximate[eligible - 1] - exact[eligible - 1]) <= index.bound(hidden))
        assert np.all(np.isneginf(approximate[excluded - 1]))
        best = eligible[np.argsort(-exact[eligible - 1], kind="stable")[:10]]
        assert set(best) <= set(candidates)
        assert not set(excluded) & set(candidates)
        assert len(candidates) < N_ITEMS / 10  # it prunes


def test_items_tied_at_the_kth_score_are_all_candidates():
    # multiples of 1/8: every product is exact in float32, so the ties are real ties
    rng = np.random.default_rng(1)
    table = torch.as_tensor(rng.integers(-2, 3, (N_ITEMS + 1, 8)) / 8, dtype=torch.float32)
    hidden = (rng.integers(-2, 3, 8) / 8).astype(np.float32)
    exact = (table[1:] @ torch.from_numpy(hidden)).numpy()
    candidates = QuantizedItemIndex(table).candidates(hidden, 5)
    kth = np.sort(exact)[-5]
    assert set(np.flatnonzero(exact >= kth) + 1) <= set(candidates)


def test_no_index_answer_when_k_exceeds_the_blocks_or_the_eligible_items():
    table = _table(np.random.default_rng(2), N_ITEMS, 8)
    index = QuantizedItemIndex(table)
    hidden = np.ones(8, dtype=np.float32)
    assert index.candidates(hidden, 13) is None  # 12 blocks
    excluded = np.arange(2, N_ITEMS)  # items 1 and N_ITEMS are left, in the first and last block
    assert index.candidates(hidden, 3, excluded) is None
    assert list(index.candidates(hidden, 2, excluded)) == [1, N_ITEMS]


@pytest.fixture(scope="module")
def checkpoint():
    config = load_config(overrides={"sasrec.hidden": 16, "sasrec.max_len": 8})
    torch.manual_seed(0)
    model = build_model("sasrec", config.model_section("sasrec"), N_ITEMS)
    with torch.no_grad():
        model.history_logit.fill_(0.05)  # a bias of 0.5: history items move in the ranking
    vocab = ItemVocab(tuple(range(1, N_ITEMS + 1)))
    return Checkpoint.from_model(model, "sasrec", vocab, data_fingerprint="fp")


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_recommendations_through_the_index_equal_scoring_every_item(checkpoint, exclude_seen):
    indexed, full = Recommender(checkpoint, quantized=True), Recommender(checkpoint, quantized=False)
    assert indexed.index is not None and full.index is None
    sessions = bench_sessions(N_ITEMS, 40, length=12)  # longer than max_len: history != window
    sessions += [[s[0]] * 3 + s[:2] for s in sessions[:5]]  # repeated items
    for k in (1, 10, 12, 30):  # 30 > 12 blocks: the index declines and every item is scored
        for session in sessions:
            a, b = indexed.recommend(session, k, exclude_seen), full.recommend(session, k, exclude_seen)
            assert [item for item, _ in a.items] == [item for item, _ in b.items]
            np.testing.assert_allclose([s for _, s in a.items], [s for _, s in b.items], rtol=1e-5, atol=1e-5)
    mixed = indexed.recommend_batch([sessions[0], [10**9], sessions[1]], 5)  # unknown-only: popular
    assert [r.fallback for r in mixed] == [None, "popular", None]
    assert [i for i, _ in mixed[2].items] == [i for i, _ in full.recommend(sessions[1], 5).items]


def test_auto_builds_the_index_for_large_dot_product_catalogues_only(checkpoint, monkeypatch):
    assert Recommender(checkpoint).index is None  # below MIN_ITEMS
    monkeypatch.setattr(item_index, "MIN_ITEMS", 1000)
    assert Recommender(checkpoint).index is not None
    popular = build_model("popular", {}, N_ITEMS)
    counted = Checkpoint.from_model(popular, "popular", checkpoint.vocab, data_fingerprint="fp")
    assert Recommender(counted).index is None  # scores are not dot products


def test_integer_vocabularies_are_stored_as_tensors_and_format_1_still_loads(checkpoint, tmp_path):
    checkpoint.item_counts = list(range(N_ITEMS))
    path = checkpoint.save(tmp_path / "c.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == 2 and isinstance(payload["vocab"], torch.Tensor)
    loaded = Checkpoint.load(path)
    assert loaded.vocab.items == checkpoint.vocab.items and type(loaded.vocab.items[0]) is int
    assert loaded.item_counts == checkpoint.item_counts
    model, text_ids = checkpoint.build_model(), ItemVocab(("a", "b"))
    text = Checkpoint.from_model(model, "sasrec", text_ids, data_fingerprint="fp")
    text_payload = torch.load(text.save(tmp_path / "t.pt"), weights_only=True)
    assert text_payload["vocab"] == ["a", "b"]
    payload.update(format_version=1, vocab=list(checkpoint.vocab.items), item_counts=list(range(N_ITEMS)))
    torch.save(payload, tmp_path / "old.pt")
    assert Checkpoint.load(tmp_path / "old.pt").vocab.items == checkpoint.vocab.items


def test_without_a_writable_cache_the_kernel_is_compiled_uncached(monkeypatch):
    """numba refuses cache=True when no cache folder is writable (a read-only image); the index
    then compiles its kernel at each start instead of failing to load."""
    import numba

    real_njit = numba.njit

    def njit(*args, cache=False, **options):
        if cache:
            raise RuntimeError("cannot cache function 'score_blocks': no locator available")
        return real_njit(*args, **options)

    monkeypatch.setattr(numba, "njit", njit)
    monkeypatch.setattr(item_index, "_kernel", None)
    table = _table(np.random.default_rng(3), N_ITEMS, 8)
    hidden = np.ones(8, dtype=np.float32)
    exact = (table[1:] @ torch.from_numpy(hidden)).numpy()
    assert int(np.argmax(exact)) + 1 in QuantizedItemIndex(table).candidates(hidden, 1)
