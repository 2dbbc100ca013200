"""The sections of the configuration tree (recops.config.Config), one frozen model each."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
)

from recops.config.base import (
    LOSSES,
    MODEL_SECTIONS,
    Bool,
    Dropout,
    Float,
    Int,
    MaxLen,
    Positive,
    Probability,
    Seed,
    Size,
    Str,
    _one_of,
    _require,
    _Section,
)
from recops.store import uri_problem


class SyntheticConfig(_Section):
    """Size and shape of the built-in synthetic e-commerce sessions."""

    _path: ClassVar[str] = "data.synthetic"

    n_sessions: Size = 4000
    n_items: Size = 800
    n_categories: Size = 16
    mean_session_length: Annotated[Float, Field(ge=1)] = 9.0
    successor_prob: Probability = 0.6  # chance the next item follows the current item's pattern
    # 1: the pattern follows the current item only; 2: the last two items together decide it
    # (what a first-order Markov chain cannot see, and a sequence model can)
    order: Annotated[Int, Field(ge=1, le=2)] = 1
    # "successors": each item's short successor lists (above). "intent": every session has a
    # hidden shopping intent and items have latent attributes; the next item depends on the
    # current one (its complements) and on the intent, which only the whole session reveals.
    # "scale": the successors process, vectorised, for 1M items and 10M events (other draws)
    structure: Annotated[Str, _one_of("successors", "intent", "scale")] = "successors"
    intent_strength: Annotated[Float, Field(ge=0)] = 10.0  # "intent": weight of the session's intent
    complement_strength: Annotated[Float, Field(ge=0)] = 6.0  # "intent": weight of the current item
    intent_change: Probability = 0.05  # "intent": chance per step that the shopper's intent changes
    zipf_exponent: Annotated[Float, Field(ge=0)] = 1.1  # long-tail popularity (0: uniform)
    seed: Seed = 7

    def _check_rules(self) -> None:
        _require(
            self.structure != "intent" or self.order == 1,
            'data.synthetic.order = 2 applies to structure = "successors" only (or "scale", its '
            'vectorised form); "intent" sessions depend on the whole session already',
        )


class DataConfig(_Section):
    _path: ClassVar[str] = "data"

    dataset: Str = "synthetic"
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)


class SASRecConfig(_Section):
    """Self-attentive sequential recommendation (Kang & McAuley 2018), trained with full CE."""

    _path: ClassVar[str] = "sasrec"
    longest_auto_len: ClassVar[int] = 200  # what max_len = "auto" chooses at most

    max_len: MaxLen = "auto"  # a number, or "auto": covers 95% of the training sequences
    hidden: Size = 64
    n_layers: Size = 2
    n_heads: Size = 1
    ffn_multiplier: Size = 4  # feed-forward width = ffn_multiplier x hidden
    dropout: Dropout = 0.2
    tie_embeddings: Bool = True  # score with the input item embeddings (else a separate output table)
    history_bias: Bool = True  # learned score offset for items already in the input (see models/base.py)
    lr: Positive = 2e-3  # Adam learning rate; per model, as each converges best at its own

    def _check_rules(self) -> None:
        _require(
            self.hidden % self.n_heads == 0,
            f"sasrec.hidden must be divisible by n_heads, got hidden={self.hidden}, n_heads={self.n_heads}",
        )


class GRU4RecConfig(_Section):
    """Session-based recommendation with a GRU (Hidasi et al. 2016), trained with full CE."""

    _path: ClassVar[str] = "gru4rec"
    # a GRU reads sequentially: long windows cost time and forget anyway
    longest_auto_len: ClassVar[int] = 50

    max_len: MaxLen = "auto"
    embedding: Size = 64
    hidden: Size = 128
    n_layers: Size = 1
    dropout: Dropout = 0.3
    history_bias: Bool = True
    lr: Positive = 5e-3


class PopularConfig(_Section):
    """Most-popular baseline: scores items by their training frequency."""

    _path: ClassVar[str] = "popular"

    max_len: Size = 200  # only the length of input it accepts; the score ignores the session


class MarkovConfig(_Section):
    """First-order Markov chain: the next item scored by how often it followed the last one."""

    _path: ClassVar[str] = "markov"

    max_len: Size = 200  # the length of input it accepts; the score reads the last item only
    smoothing: Annotated[Float, Field(ge=0)] = 1.0  # pseudo-count spread by popularity over the row


class SRConfig(_Section):
    """Sequential rules (Ludewig & Jannach 2018): item j after item i within ``steps`` positions,
    weighted 1/gap; the next item scored by the rules of the last one."""

    _path: ClassVar[str] = "sr"

    max_len: Size = 200
    steps: Size = 10  # the longest gap between the two items of a rule
    smoothing: Annotated[Float, Field(ge=0)] = 1.0


class VSKNNConfig(_Section):
    """Vector session-KNN (Ludewig & Jannach 2018): the k training sessions most like the
    current one (its items weighted by recency), their items scored by that similarity."""

    _path: ClassVar[str] = "vsknn"

    max_len: Size = 200
    k: Size = 100  # neighbours
    recency: Annotated[Str, _one_of("div", "linear", "same")] = "div"  # item weight by position
    idf: Bool = True  # weight a shared item by log(sessions / sessions containing it)
    smoothing: Annotated[Float, Field(ge=0)] = 0.01  # popularity prior, so no item ties at zero


ModelConfig = SASRecConfig | GRU4RecConfig | PopularConfig | MarkovConfig | SRConfig | VSKNNConfig


class TrainConfig(_Section):
    _path: ClassVar[str] = "train"

    epochs: Size = 200
    batch_size: Size = 64
    weight_decay: Annotated[Float, Field(ge=0)] = 0.0
    patience: Size = 5  # epochs without a better validation NDCG@10 before stopping
    warm_epochs: Size = 5  # at most, when training starts from the champion's weights
    min_epochs: Size = 1
    eval_k: Size = 10
    seed: Seed = 42
    device: Annotated[Str, _one_of("auto", "cpu", "cuda")] = "auto"  # "auto" = CUDA when present, else CPU
    grad_clip: Annotated[Float, Field(ge=0)] = 5.0  # max gradient norm; 0 turns clipping off
    # the objective (recops.models.losses): "ce" full softmax cross-entropy; "ce_chunked" the same,
    # exactly, a slice of the catalogue at a time; "sampled" softmax over the batch's targets and
    # `negatives` uniform items, logQ-corrected; "auto" = ce while a batch's logits fit in
    # `logits_mb`, ce_chunked above
    loss: Annotated[Str, _one_of(*LOSSES)] = "auto"
    logits_mb: Size = 1024  # the most a batch's (positions x items) logits may take (ce_chunked: a chunk's)
    negatives: Size = 1024  # "sampled": uniform negatives shared by a batch, besides its targets


class GateConfig(_Section):
    """The champion/challenger gate: paired bootstrap on per-sequence NDCG@k plus behavioural checks."""

    _path: ClassVar[str] = "gate"

    margin: Annotated[Float, Field(ge=0)] = (
        0.0  # how far below the champion the CI's lower bound may reach (NDCG points)
    )
    resamples: Size = 1000
    seed: Seed = 0
    # latency: challenger and champion timed side by side (same sessions, calls interleaved, the
    # server's torch threads). Ceiling on the challenger's p95 of one `recommend` call: 15-50x what
    # a shared 2-core VM measured, with and without a busy process beside it (README: the gate)
    latency_budget_ms: Positive = 200.0
    latency_ratio: Annotated[Float, Field(ge=1)] = 2.0  # challenger p95 <= ratio x champion p95 ...
    latency_floor_ms: Positive = 5.0  # ... a champion faster than this counting as this fast
    k: Size = 10  # NDCG@k for the comparison, top-k for the behavioural checks
    sessions: Size = 200  # sessions the behavioural checks run
    confidence: Annotated[Float, Field(gt=0, lt=1)] = 0.95
    # reject a challenger whose NDCG@k does not clear the best simple baseline's (markov, sr,
    # vsknn, popular), trained on the same split at registration (ML Test Score, Model 5)
    require_beat_baseline: Bool = True
    # a challenger that passes (with a champion to replace) is first scored in shadow beside the
    # champion; the alias moves only when its online NDCG@k interval passes the same margin
    # ([online] min_pairs answered requests with a next event; recops.continuous.shadow)
    require_shadow: Bool = False


class ResourcesConfig(_Section):
    """What the training step asks of a remote compute layer (AWS Batch, Kubernetes).

    Metaflow ignores @resources for local runs, so the defaults cost nothing on a laptop.
    """

    _path: ClassVar[str] = "resources"

    cpu: Size = 2
    memory: Size = 8000  # MB
    gpu: Annotated[Int, Field(ge=0)] = 1
    retries: Annotated[Int, Field(ge=0)] = (
        1  # extra attempts for the training step (@retry), e.g. after a spot interruption
    )


class DriftConfig(_Section):
    """When new events count as drifted from the champion's training data (recops.continuous.drift)."""

    _path: ClassVar[str] = "drift"

    popularity_js: Annotated[Float, Field(gt=0, le=1)] = (
        0.1  # Jensen-Shannon divergence (base 2, 0..1) of item popularity
    )
    unseen_share: Annotated[Float, Field(gt=0, le=1)] = (
        0.05  # share of new events on items the champion never saw
    )
    length_js: Annotated[Float, Field(gt=0, le=1)] = (
        0.1  # Jensen-Shannon divergence of the session-length distribution
    )
    min_events: Size = 200  # fewer new events than this: too few to judge, no drift reported


class RetrainConfig(_Section):
    """The continuous-training policy of `recops retrain` and the Prefect `retrain` flow."""

    _path: ClassVar[str] = "retrain"

    max_champion_age_hours: Positive = 168.0  # retrain a champion this old even if nothing changed
    on_new_data: Bool = True  # new events alone trigger retraining (False: only drift or age do)
    model: Annotated[Str, _one_of(*MODEL_SECTIONS)] = "sasrec"
    deploy_timeout_s: Positive = 60.0  # how long `deploy` waits for the local server to switch
    webhook_url: Str = ""  # POSTed a JSON message when a cycle fails (empty: no webhook)
    train_timeout_s: Positive = 21600.0  # a training run still going after this is ended (6 h)
    lock_wait_s: Positive = 3600.0  # how long a cycle waits for another to finish before skipping
    keep: Size = 5  # after each cycle, gc keeps the newest N versions, bentos, models (+ champion's)
    tune: Bool = False  # run a small search (TuneRecommenderFlow, [tune]) instead of one training
    # start from the champion's weights for at most train.warm_epochs epochs (from scratch when
    # the champion is of another family or shape, or with tune)
    warm_start: Bool = True
    # the report notebook training runs execute ("": notebooks/03_evaluation_report.ipynb); when
    # only it changed, a cycle re-renders the current version's report instead of retraining
    report_template: Str = ""


class OnlineConfig(_Section):
    """The online loop (recops.continuous.online): what shoppers did after the served lists."""

    _path: ClassVar[str] = "online"

    follow_up_minutes: Positive = 30.0  # a session's next event within this long after an answer counts
    window_hours: Positive = 24.0  # what `recops online-report` and each cycle's check look back over
    k: Annotated[Int, Field(ge=1, le=1000)] = 10  # the cut-off of HR/NDCG/MRR@K online
    min_pairs: Size = 100  # fewer joined (answer, next event) pairs: figures shown, never acted on
    # retrain when the champion's online NDCG@K over the window falls more than this share below
    # its baseline (its first online window; its offline test NDCG@10 until it has one)
    max_drop: Annotated[Float, Field(gt=0, lt=1)] = 0.3
    popular_share_top: Probability = 0.2  # "popular" items: this top share of the window's items
    # cold start (recops.data.trending): sessions with no known item get the items trending over
    # the newest trending_hours of events (within their category where events carry one)
    trending_hours: Positive = 24.0
    # the last places of each list for trending items no model knows yet
    new_item_slots: Annotated[Int, Field(ge=0, le=10)] = 1


def _store_uri(value: str) -> str:
    if problem := uri_problem(value):
        raise ValueError(problem)
    return value


class StoreConfig(_Section):
    """Where the continuous-training state lives (recops.store); ``$RECOPS_STORE`` overrides it."""

    _path: ClassVar[str] = "store"

    uri: Annotated[Str, AfterValidator(_store_uri)] = ""  # a folder or s3://bucket/prefix ("": $RECOPS_HOME)


def _price_table(value: Any) -> Any:
    if not isinstance(value, dict):
        return value  # pairs already (a default, or a config read back)
    for name, price in value.items():
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not 0 <= price < float("inf"):
            raise ValueError(f"needs a price >= 0 (USD per hour) for {name!r}")
    return tuple(sorted((str(name), float(price)) for name, price in value.items()))


class CacheConfig(_Section):
    """The step cache of the training flows (recops.pipeline.cache; off: --no-cache or RECOPS_CACHE=off)."""

    _path: ClassVar[str] = "cache"

    # USD per hour of the machine a step ran on ($RECOPS_INSTANCE_TYPE; "local" when unset):
    # what `recops cache report` prices saved seconds at. On-demand Linux prices, us-east-1.
    # A table in TOML; kept as sorted (type, price) pairs so that the config stays hashable.
    instance_prices: Annotated[tuple[tuple[str, float], ...], BeforeValidator(_price_table)] = (
        ("c5.2xlarge", 0.34),
        ("g4dn.xlarge", 0.526),
        ("g5.xlarge", 1.006),
        ("local", 0.0),
        ("m5.large", 0.096),
        ("m5.xlarge", 0.192),
        ("p3.2xlarge", 3.06),
    )

    def price(self, instance_type: str) -> float | None:
        """USD per hour of ``instance_type``; None when the table does not know it."""
        return dict(self.instance_prices).get(instance_type)
