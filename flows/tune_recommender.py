"""TuneRecommenderFlow: a hyperparameter search, then the training flow's evaluate and register.

    start -> validate -> split -> trial (foreach: one task per trial) -> choose -> evaluate
          -> register (baseline, MLflow, gate; then the search as lineage) -> end

Optuna samples every trial up front (one wave; recops.training.tune says why QMC), each trial
trains as its own Metaflow task (the costliest start first, so that cheap ones fill the end),
the best by validation NDCG@10 is evaluated on the test set, registered as `challenger` and
gated exactly as TrainRecommenderFlow's model is.

    python flows/tune_recommender.py run --dataset synthetic                 # [tune] of the config
    python flows/tune_recommender.py run --model sasrec,gru4rec --trials 8 --epochs 10
    python flows/tune_recommender.py --config config my.toml run --max-workers 4
    python flows/tune_recommender.py --with batch run --dataset parquet:s3://bucket/recops/snapshots/x.parquet
    python flows/tune_recommender.py resume          # after a failed trial: finished trials are reused

Locally, trials run ``--max-workers`` at a time, by default the config's ``tune.parallel``
(:class:`TrialWorkers`). On Batch, ``GpuQueue`` sends every trial to $RECOPS_BATCH_GPU_QUEUE
(recops.pipeline.batch), each with the training step's ``@resources`` and ``@retry``, up to
Metaflow's 16 at once unless ``--max-workers`` says otherwise.
"""

import os
import sys
from pathlib import Path

from metaflow import Config, FlowMutator, FlowSpec, Parameter, card, current, resources, retry, step

from recops.data import DATASET_HELP
from recops.pipeline.batch import GpuQueue
from recops.pipeline.steps import DEFAULT_CONFIG


class TrialWorkers(FlowMutator):
    """``--max-workers`` defaults to the config's ``tune.parallel``. Metaflow has no flow-level
    setting for it, but its command line reads ``METAFLOW_RUN_MAX_WORKERS`` (and ``_RESUME_``)
    when it parses ``run``'s options, which is after the config is parsed and mutators run; an
    explicit ``--max-workers`` or a variable already set still wins. Only in this flow's own
    command (by hand, or the process Metaflow's Runner starts): a launcher that merely imports
    the flow, as the Runner does, keeps its environment as it was. Not where Metaflow is set up
    for AWS Batch (where the retrain cycle runs ``--with batch``): each trial is a Batch job
    there, and Metaflow's own default (16 at once) or ``--max-workers`` applies."""

    def pre_mutate(self, mutable_flow):
        from recops.pipeline.batch import on_aws_batch

        if Path(sys.argv[0]).resolve() != Path(__file__).resolve() or on_aws_batch():
            return
        parallel = dict(mutable_flow.configs)["config"]["tune"]["parallel"]
        for command in ("RUN", "RESUME"):
            os.environ.setdefault(f"METAFLOW_{command}_MAX_WORKERS", str(parallel))


@TrialWorkers
@GpuQueue("trial")
class TuneRecommenderFlow(FlowSpec):
    """Search hyperparameters (one task per trial), evaluate the best, register and gate it."""

    config = Config(
        "config",
        default=str(DEFAULT_CONFIG),
        parser="recops.pipeline.steps.parse_toml_config",
        help="TOML config (configs/default.toml lists every key; [tune] is the search); validated at launch.",
    )
    dataset = Parameter("dataset", default="synthetic", help=DATASET_HELP)
    model = Parameter(
        "model", default="", help="families to search, comma-separated (sasrec,gru4rec); empty: tune.models"
    )
    trials = Parameter("trials", default=0, help="trials in all; 0 keeps the config's tune.trials")
    epochs = Parameter("epochs", default=0, help="maximum epochs per trial; 0 keeps tune.max_epochs")

    @step
    def start(self):
        """Parse the typed config once and plan the trials (a bad space fails here, before any
        work); load, validate (schema), fingerprint and profile the events."""
        from recops.data import load_events
        from recops.data.interactions import fingerprint_events
        from recops.data.profile import data_profile
        from recops.pipeline.steps import flow_config
        from recops.training.tune import launch_order, parse_models, plan_trials

        overrides = {
            "tune.models": parse_models(self.model),
            "tune.trials": self.trials or None,
            "tune.max_epochs": self.epochs or None,
        }
        self.settings = flow_config(self.config, overrides)
        self.plan = launch_order(plan_trials(self.settings), self.settings)  # costliest first
        self.events = load_events(self.dataset, self.settings.data)
        self.data_fingerprint = fingerprint_events(self.events)
        self.data_profile = data_profile(self.events, self.data_fingerprint)
        self.next(self.validate)

    @step
    def validate(self):
        """Data expectations beyond the schema; fails listing every unmet one."""
        from recops.pipeline.steps import check_expectations

        self.data_summary = check_expectations(self.events)
        self.next(self.split)

    @step
    def split(self):
        """Item vocabulary and the leave-one-out split; then one task per planned trial."""
        from recops.training.experiment import prepare_events

        self.data = prepare_events(self.dataset, self.events, self.settings)
        self.next(self.trial, foreach="plan")

    @retry(times=config.resources.retries)
    @resources(cpu=config.resources.cpu, memory=config.resources.memory, gpu=config.resources.gpu)
    @step
    def trial(self):
        """Train this trial's parameters with early stopping on validation NDCG@10 (CUDA when present)."""
        from recops.pipeline.steps import inject_fault_if_asked
        from recops.training.tune import run_trial

        inject_fault_if_asked("trial")
        self.result = run_trial(self.data, self.input, self.settings)
        self.next(self.choose)

    @step
    def choose(self, inputs):
        """The best trial by validation NDCG@10 (the defaults win a tie) goes on; every trial is
        kept as the search's lineage."""
        from recops.training.tune import best_trial, search_lineage

        # the same in every branch, but each trial saved it again and a pydantic model's pickle
        # differs between processes (it holds sets), so merge_artifacts would see a conflict
        self.settings = inputs[0].settings
        self.merge_artifacts(inputs, exclude=["result"])
        results = [branch.result for branch in inputs]
        best = best_trial(results)
        self.checkpoint, self.history = best.checkpoint, best.history
        self.search = search_lineage(self.settings, results)
        self.next(self.evaluate)

    @card(type="blank", id="evaluation")
    @step
    def evaluate(self):
        """Full-ranking test metrics, per-sequence ranks and example recommendations."""
        from recops.pipeline.cards import evaluation_card
        from recops.serving.recommender import example_recommendations
        from recops.training.evaluate import evaluate_model

        self.evaluation = evaluate_model(self.checkpoint.build_model(), self.data.split.test)
        self.checkpoint.metrics["test"] = self.evaluation.metrics
        self.metrics, self.ranks = self.evaluation.metrics, self.evaluation.ranks
        self.examples = example_recommendations(self.checkpoint, self.data.split.test)
        current.card["evaluation"].extend(evaluation_card(self.metrics, self.examples))
        self.next(self.register)

    @step
    def register(self):
        """As TrainRecommenderFlow's register step (the best simple baseline on the same split;
        register as `challenger`; gate against the baseline and the `champion`), then attach the
        search (trials, space, best parameters) to the registered version."""
        from recops.pipeline.steps import register_and_gate
        from recops.registry.search import record_search
        from recops.training.baselines import baseline_to_beat

        self.baseline = baseline_to_beat(self.checkpoint.model_name, self.data, self.settings)
        pathspec = f"{current.flow_name}/{current.run_id}"
        self.model_version, self.decision = register_and_gate(
            self.checkpoint,
            self.history,
            self.evaluation,
            self.data.split.test,
            pathspec,
            self.settings,
            self.data_profile,
            self.baseline,
        )
        record_search(self.model_version["version"], self.search)
        self.next(self.end)

    @step
    def end(self):
        """Print the result; metrics, checkpoint, search and data_fingerprint are readable with the client."""
        from recops.pipeline.steps import run_summary
        from recops.training.tune import search_summary

        print(
            run_summary(f"{current.flow_name}/{current.run_id}", self.checkpoint, self.metrics, self.decision)
        )
        print(search_summary(self.search))


if __name__ == "__main__":
    TuneRecommenderFlow()
