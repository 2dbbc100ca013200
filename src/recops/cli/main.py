"""The ``recops`` command: every command group, assembled.

One module per group: ``train`` (train, evaluate), ``bench`` (quality, serve), ``promote``,
``registry``, ``bento`` (bento build, serve), ``deploy`` (deploy, status), ``retrain``
(retrain, simulate-events), ``online`` (online-report, simulate-traffic), ``schedule`` and
``cache`` (report, audit). Errors are reported in one place,
:class:`recops.cli.common.RecopsGroup`.
"""

from __future__ import annotations

from recops.cli.bench import bench_app
from recops.cli.bento import bento_app, serve_command
from recops.cli.cache import cache_app
from recops.cli.common import command_group, log_to_stderr
from recops.cli.deploy import deploy_command, gc_command, status_command
from recops.cli.maturity import maturity_command
from recops.cli.online import online_report_command, simulate_traffic_command
from recops.cli.promote import PROMOTE_EPILOG, promote_command
from recops.cli.provenance import provenance_command
from recops.cli.registry import registry_app
from recops.cli.retrain import retrain_command, simulate_events_command
from recops.cli.schedule import schedule_app
from recops.cli.train import evaluate_command, train_command

app = command_group(
    "recops: a sequence-aware recommender from notebook to served, retrained model.", add_completion=False
)
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)
app.command("promote", epilog=PROMOTE_EPILOG)(promote_command)
app.add_typer(registry_app, name="registry")
app.add_typer(bento_app, name="bento")
app.command("serve")(serve_command)
app.command("deploy")(deploy_command)
app.command("status")(status_command)
app.command("provenance")(provenance_command)
app.command("maturity")(maturity_command)
app.command("gc")(gc_command)
app.command("retrain")(retrain_command)
app.command("simulate-events")(simulate_events_command)
app.command("simulate-traffic")(simulate_traffic_command)
app.command("online-report")(online_report_command)
app.add_typer(schedule_app, name="schedule")
app.add_typer(bench_app, name="bench")
app.add_typer(cache_app, name="cache")


def main() -> None:  # pragma: no cover - console entry
    # Warnings of a command that sets up no logging of its own go through a redacting handler
    # too (Python's last-resort handler would print them as they are); commands that log
    # progress replace it with their own, redacting as well.
    log_to_stderr(quiet=True)
    app()


if __name__ == "__main__":
    main()
