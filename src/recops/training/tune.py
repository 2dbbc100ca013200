"""Hyperparameter search: plan a wave of trials, train one, pick the best, describe the search.

A trial is one model family with some keys of its config section set (``Trial.params``); the
space each family is searched over is ``[tune.<family>]`` (:class:`recops.config.TuneConfig`).
TuneRecommenderFlow runs one Metaflow task per trial, and a Metaflow ``foreach`` fans out once,
so every trial is sampled up front, in one wave, before any has a score: a sampler cannot learn
from earlier trials here, and the default, quasi-Monte Carlo (a scrambled Halton sequence),
spreads one wave over the space more evenly than random draws. ``tpe`` is accepted, but with no
told trials it samples as randomly as ``random``.

Several families (``tune.models``) split the trials between them, one Optuna study each, since a
QMC sequence needs one fixed space: a family with nothing to search (popular, or an empty
``[tune.<family>]``) gets one trial, the others share the rest evenly (the first ones listed get
one more when it does not divide). Each family's first trial is the config's own values, so the
search never returns a model that is worse on validation than training with the config would.
The best trial is the one with the highest validation NDCG@k (``train.eval_k``); the defaults
win a tie.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from recops.config import Config, ConfigError, SearchDimension, TrainConfig, TuneConfig
from recops.localproc import cpu_share
from recops.training.checkpoint import Checkpoint
from recops.training.experiment import PreparedData, fit


@dataclass(frozen=True)
class Trial:
    number: int  # across the whole search, from 0
    model: str  # the family
    params: dict[str, Any]  # keys of the family's config section -> value


@dataclass(frozen=True)
class TrialResult:
    trial: Trial
    valid_ndcg: float  # validation NDCG@k (k = train.eval_k) of the best epoch: what is compared
    valid_metrics: dict[str, float]
    epochs: int  # 0 for a model fitted by counting
    best_epoch: int
    train_seconds: float
    checkpoint: Checkpoint = field(repr=False)
    history: list[dict[str, float]] = field(repr=False, default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The trial as plain JSON, without its weights (a row of the search lineage)."""
        return {
            "number": self.trial.number,
            "model": self.trial.model,
            "params": self.trial.params,
            "valid_ndcg": self.valid_ndcg,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "train_seconds": round(self.train_seconds, 3),
        }


def parse_models(text: str) -> tuple[str, ...] | None:
    """``"sasrec, gru4rec"`` -> ``("sasrec", "gru4rec")``; empty -> None (keep tune.models)."""
    models = tuple(name.strip() for name in text.split(",") if name.strip())
    return models or None


def search_space(config: Config, family: str) -> dict[str, SearchDimension]:
    """``[tune.<family>]`` widened to hold the config's own value of every key (a range stretches
    to it, choices gain it), so that the defaults are a point of the space."""
    section = config.model_section(family)
    space = {}
    for key, dim in config.tune.space(family).items():
        default = getattr(section, key)
        if dim.choices is not None:
            space[key] = dim if default in dim.choices else SearchDimension(choices=(*dim.choices, default))
            continue
        low, high = min(dim.low, default), max(dim.high, default)  # type: ignore[type-var]
        if dim.log and low <= 0:
            raise ConfigError(
                f"tune.{family}.{key} is a log range, but {family}.{key} = {default} is not > 0"
            )
        space[key] = SearchDimension(low=low, high=high, log=dim.log)
    return space


def trials_per_family(config: Config) -> dict[str, int]:
    """How many trials each family in tune.models gets (see the module docstring)."""
    tune = config.tune
    searched = [family for family in tune.models if tune.space(family)]
    counts = dict.fromkeys(tune.models, 1)
    if searched:
        each, extra = divmod(tune.trials - (len(tune.models) - len(searched)), len(searched))
        counts.update({family: each + (i < extra) for i, family in enumerate(searched)})
    return counts


def plan_trials(config: Config) -> list[Trial]:
    """Every trial of the search, sampled up front (one wave), deterministic for tune.seed."""
    trials: list[Trial] = []
    for family, count in trials_per_family(config).items():
        for params in _sample(config, family, count):
            trials.append(Trial(len(trials), family, params))
    return trials


def launch_order(trials: list[Trial], config: Config) -> list[Trial]:
    """``trials`` in the order to start them: the costliest first (longest processing time
    first), so that the cheap ones fill the gaps at the end and no worker idles long while the
    last big trial runs alone. The cost of a trial is its network's parameters without the item
    table (what every training position multiplies through); a counting baseline costs 0.
    Ties keep the planned order; the trial numbers do not change."""
    from recops.models import build_model

    def cost(trial: Trial) -> int:
        model = build_model(trial.model, trial_config(config, trial).model_section(trial.model), n_items=1)
        return sum(p.numel() for p in model.parameters()) if model.trainable else 0

    costs = {trial.number: cost(trial) for trial in trials}
    return sorted(trials, key=lambda trial: -costs[trial.number])  # sorted() is stable


def _sample(config: Config, family: str, count: int) -> list[dict[str, Any]]:
    """``count`` parameter sets for ``family`` from one Optuna study, the config's own first."""
    import optuna

    space = search_space(config, family)
    if not space:
        return [{}]
    section = config.model_section(family)
    integer = {key for key in space if type(getattr(section, key)) is int}
    distributions = {key: _distribution(dim, key in integer) for key, dim in space.items()}
    study = optuna.create_study(direction="maximize", sampler=_sampler(config.tune))
    study.enqueue_trial({key: getattr(section, key) for key in space})
    return [study.ask(distributions).params for _ in range(count)]


def _distribution(dim: SearchDimension, integer: bool) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dim.choices is not None:
        return CategoricalDistribution(dim.choices)
    if integer:
        return IntDistribution(int(dim.low), int(dim.high), log=dim.log)  # type: ignore[arg-type]
    return FloatDistribution(dim.low, dim.high, log=dim.log)  # type: ignore[arg-type]


def _sampler(tune: TuneConfig) -> Any:
    import optuna

    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=tune.seed)
    if tune.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=tune.seed)
    with warnings.catch_warnings():
        # QMCSampler is marked experimental (since Optuna 3.0); that is all the warning says
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # Halton, not Sobol: Sobol's balance holds only for a power-of-two number of trials
        return optuna.samplers.QMCSampler(qmc_type="halton", scramble=True, seed=tune.seed)


def trial_config(config: Config, trial: Trial) -> Config:
    """The config a trial trains with: its params in the family's section, tune.max_epochs and
    tune.patience as train.epochs and train.patience, all validated (a ConfigError names an
    unknown family or key, or a bad value)."""
    section = config.model_section(trial.model)
    tuned = type(section)(**{**section.model_dump(), **trial.params})
    budget = {"epochs": config.tune.max_epochs, "patience": config.tune.patience}
    train = TrainConfig(**{**config.train.model_dump(), **budget})
    return config.model_copy(update={trial.model: tuned, "train": train})


def trial_threads(parallel: int, environ: Mapping[str, str] = os.environ) -> int:
    """Torch threads for one trial task: the CPUs this process may use, split between the
    ``parallel`` trials Metaflow runs at once on this machine. Two trials of two threads each on
    two cores spin against each other and run many times slower than with one thread each. A
    Batch job (AWS_BATCH_JOB_ID set) has its instance's CPUs to itself and uses them all."""
    return cpu_share(1 if "AWS_BATCH_JOB_ID" in environ else parallel)


def run_trial(data: PreparedData, trial: Trial, config: Config) -> TrialResult:
    """Train one trial (early stopping on validation NDCG@k) and score it on validation, with
    this machine's CPUs shared between the trials running at once (:func:`trial_threads`)."""
    import torch

    trial_settings = trial_config(config, trial)
    threads = torch.get_num_threads()
    torch.set_num_threads(trial_threads(config.tune.parallel))
    try:
        fitted = fit(data, trial.model, trial_settings)
    finally:
        torch.set_num_threads(threads)
    result = fitted.train
    return TrialResult(
        trial=trial,
        valid_ndcg=float(result.valid_metrics[f"ndcg@{trial_settings.train.eval_k}"]),
        valid_metrics=dict(result.valid_metrics),
        epochs=result.epochs_run,
        best_epoch=result.best_epoch,
        train_seconds=result.train_seconds,
        checkpoint=fitted.checkpoint,
        history=[asdict(epoch) for epoch in result.history],
    )


def best_trial(results: list[TrialResult]) -> TrialResult:
    """The highest validation NDCG@k; on a tie the earlier trial (each family's defaults come first)."""
    if not results:
        raise ValueError("no trial results to choose from")
    return max(results, key=lambda r: (r.valid_ndcg, -r.trial.number))


def search_lineage(config: Config, results: list[TrialResult]) -> dict[str, Any]:
    """What the registered model's search was, as plain JSON: sampler, seed, the space searched,
    every trial (params and validation NDCG@k) and the best one."""
    tune = config.tune
    return {
        "sampler": tune.sampler,
        "seed": tune.seed,
        "max_epochs": tune.max_epochs,
        "patience": tune.patience,
        "metric": f"valid ndcg@{config.train.eval_k}",
        "space": {
            family: {key: dim.describe() for key, dim in search_space(config, family).items()}
            for family in tune.models
        },
        "trials": [r.summary() for r in sorted(results, key=lambda r: r.trial.number)],
        "best": best_trial(results).summary(),
    }


def search_summary(lineage: dict[str, Any]) -> str:
    """One line for the end of a run: how many trials, and the winner."""
    best = lineage["best"]
    params = ", ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in best["params"].items()
    )
    return (
        f"  search  {len(lineage['trials'])} trials ({lineage['sampler']}); best #{best['number']} "
        f"{best['model']}, {lineage['metric']} {best['valid_ndcg']:.4f}" + (f": {params}" if params else "")
    )
