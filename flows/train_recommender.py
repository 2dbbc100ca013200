"""TrainRecommenderFlow: the production training pipeline for the session recommender.

    start -> validate -> split -> train -> evaluate -> report -> register (baseline, MLflow, gate) -> end

Every step is a thin call into ``recops``. Run it locally, or on AWS Batch:

    python flows/train_recommender.py run --dataset ml-100k --model sasrec
    python flows/train_recommender.py run --warm_start champion   # continue the champion's weights
    python flows/train_recommender.py --with batch run --dataset parquet:s3://bucket/recops/snapshots/x.parquet
    python flows/train_recommender.py resume          # after a failed step
    python flows/train_recommender.py run --no-cache  # run every step, reuse nothing

validate, split, train and evaluate are ``@cached`` (recops.pipeline.cache): a step whose code,
inputs, config sections and library versions are unchanged reuses an earlier run's outputs;
start (reads the data), report (a separate kernel) and register (side effects) always run.

On Batch every step goes to METAFLOW_BATCH_JOB_QUEUE (the CPU queue), except ``train``, which
``GpuQueue`` sends to $RECOPS_BATCH_GPU_QUEUE when that is set (recops.pipeline.batch); the
retrain cycle adds ``--with batch`` itself when Metaflow is configured for AWS.
"""

from metaflow import Config, FlowSpec, IncludeFile, Parameter, card, current, resources, retry, step

from recops.data import DATASET_HELP
from recops.pipeline import NO_CACHE_HELP, NO_CACHE_OPTION
from recops.pipeline.batch import GpuQueue
from recops.pipeline.cache import cached
from recops.pipeline.steps import DEFAULT_CONFIG, REPORT_NOTEBOOK, warm_start_input


@GpuQueue("train")
class TrainRecommenderFlow(FlowSpec):
    """Validate events, train and evaluate a sequence recommender, report, register."""

    config = Config(
        "config",
        default=str(DEFAULT_CONFIG),
        parser="recops.pipeline.steps.parse_toml_config",
        help="TOML config (configs/default.toml lists every key); validated at launch.",
    )
    dataset = Parameter("dataset", default="synthetic", help=DATASET_HELP)
    model = Parameter(
        "model", default="sasrec", help="sasrec, gru4rec, or a simple baseline: markov, sr, vsknn, popular"
    )
    epochs = Parameter("epochs", default=0, help="maximum epochs; 0 keeps the config's train.epochs")
    warm_start = Parameter(
        "warm_start",
        default="",
        help="start from a registered model's weights: 'champion' (from scratch when there is none) "
        "or a version number; at most train.warm_epochs epochs. Empty: from scratch.",
    )
    no_cache = Parameter(NO_CACHE_OPTION, type=bool, default=False, is_flag=True, help=NO_CACHE_HELP)
    report_template = IncludeFile(
        "report_template",
        default=str(REPORT_NOTEBOOK),
        is_text=True,
        help="Notebook the report step executes (papermill). Read at launch and stored with the run, "
        "so remote steps (--with batch) need no copy of it.",
    )

    @step
    def start(self):
        """Parse the typed config once; load, validate (schema), fingerprint and profile the events."""
        from recops.data import load_events
        from recops.data.interactions import fingerprint_events
        from recops.data.profile import data_profile
        from recops.pipeline.steps import check_report_template, check_warm_start, flow_config

        self.settings = flow_config(self.config, {"train.epochs": self.epochs or None})
        self.settings.model_section(self.model)  # unknown model: fail before any work
        check_warm_start(self.warm_start)  # a bad value fails before any work
        check_report_template(self.report_template)  # not a notebook: fail before training
        self.events = load_events(self.dataset, self.settings.data)
        self.data_fingerprint = fingerprint_events(self.events)
        self.data_profile = data_profile(self.events, self.data_fingerprint)
        self.next(self.validate)

    @cached
    @step
    def validate(self):
        """Data expectations beyond the schema; fails listing every unmet one."""
        from recops.pipeline.steps import check_expectations

        self.data_summary = check_expectations(self.events)
        self.next(self.split)

    @cached
    @step
    def split(self):
        """Item vocabulary and the leave-one-out split."""
        from recops.training.experiment import prepare_events

        self.data = prepare_events(self.dataset, self.events, self.settings)
        self.next(self.train)

    @cached(inputs=warm_start_input)
    @card(type="blank", id="training")
    @retry(times=config.resources.retries)
    @resources(cpu=config.resources.cpu, memory=config.resources.memory, gpu=config.resources.gpu)
    @step
    def train(self):
        """Train with early stopping on validation NDCG@10 (CUDA when present); with
        --warm_start, from that version's weights (recops.training.warm_start)."""
        from dataclasses import asdict

        from recops.pipeline.cards import training_card
        from recops.pipeline.steps import inject_fault_if_asked, warm_start_from
        from recops.training.experiment import fit
        from recops.training.train import epoch_line

        inject_fault_if_asked("train")
        self.warm_version, warm_from = warm_start_from(self.warm_start, self.data_fingerprint)
        progress = lambda stats: print(epoch_line(stats), flush=True)  # noqa: E731  (one line per epoch)
        fitted = fit(self.data, self.model, self.settings, on_epoch=progress, warm_from=warm_from)
        self.checkpoint = fitted.checkpoint
        self.history = [asdict(epoch) for epoch in fitted.train.history]
        current.card["training"].extend(training_card(self.history))
        self.next(self.evaluate)

    @cached
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
        self.next(self.report)

    @card(type="blank", id="report")
    @step
    def report(self):
        """Execute the report notebook (notebooks/03_evaluation_report.ipynb unless --report_template
        names another) for this run; keep it and render it."""
        from pathlib import Path
        from tempfile import TemporaryDirectory

        from recops.pipeline.cards import notebook_card
        from recops.pipeline.steps import run_report_notebook

        with TemporaryDirectory() as tmp:
            template = Path(tmp) / "template.ipynb"
            template.write_text(self.report_template)
            run_pathspec = f"{current.flow_name}/{current.run_id}"
            self.report_notebook = run_report_notebook(run_pathspec, Path(tmp) / "report.ipynb", template)
        current.card["report"].extend(notebook_card(self.report_notebook))
        self.next(self.register)

    @step
    def register(self):
        """Train the best simple baseline on the same split; register in MLflow as `challenger`
        with lineage and the baseline's ranks, then gate it against the baseline and the `champion`."""
        from recops.pipeline.steps import register_and_gate
        from recops.training.baselines import baseline_to_beat

        self.baseline = baseline_to_beat(self.model, self.data, self.settings)  # None: not required
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
            getattr(self, "step_cache", None),
            self.report_notebook,
            self.report_template,
        )
        self.next(self.end)

    @step
    def end(self):
        """Print the result; metrics, checkpoint and data_fingerprint are readable with the client."""
        from recops.pipeline.steps import run_summary

        print(
            run_summary(
                f"{current.flow_name}/{current.run_id}",
                self.checkpoint,
                self.metrics,
                self.decision,
                getattr(self, "step_cache", None),
            )
        )


if __name__ == "__main__":
    TrainRecommenderFlow()
