"""prefect.yaml into deployment specs: the project's file, and errors that name the key and deployment."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from recops.continuous.schedules import ScheduleError, ScheduleSpec, load_deployments

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, *deployments: str) -> Path:
    path = tmp_path / "prefect.yaml"
    path.write_text("deployments:\n" + "".join(f"  - {deployment}\n" for deployment in deployments))
    return path


@pytest.mark.unit
def test_prefect_yaml_has_the_nightly_retrain_the_hourly_drift_check_and_the_weekly_maturity_report():
    specs = {spec.name: spec for spec in load_deployments(REPO / "prefect.yaml")}

    assert set(specs) == {"nightly-retrain", "hourly-drift-check", "weekly-maturity-report"}
    nightly, hourly = specs["nightly-retrain"], specs["hourly-drift-check"]
    weekly = specs["weekly-maturity-report"]
    for spec in (nightly, hourly, weekly):
        assert spec.work_pool == "recops-process"
        assert spec.project_dir == REPO
        assert len(spec.schedules) == 1 and spec.schedules[0].timezone == "UTC"
        assert spec.schedules[0].active
    for spec in (nightly, hourly):
        assert spec.entrypoint == "src/recops/continuous/flow.py:retrain"
        assert spec.full_name == f"retrain/{spec.name}"
    assert nightly.schedules[0].cron == "0 2 * * *"
    assert nightly.parameters == {"dataset": "synthetic"}
    assert hourly.schedules[0].cron == "0 * * * *"
    assert hourly.parameters == {"dataset": "synthetic", "retrain_on_new_data": False}
    assert weekly.entrypoint == "src/recops/continuous/maturity_flow.py:maturity_report"
    assert weekly.full_name == "maturity-report/weekly-maturity-report"  # the flow's name, not retrain
    assert weekly.schedules[0].cron == "30 6 * * 1"  # Mondays, clear of the hourly check at :00
    assert weekly.parameters == {}
    assert set(weekly.tags) == {"recops", "maturity"}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("deployment", "message"),
    [
        ("{name: a, entrypoint: f.py}", "entrypoint"),
        ("{name: a, entrypoint: f.py:x, schedules: [{cron: '0 2 * * *', interval: 60}]}", "exactly one"),
        ("{name: a, entrypoint: f.py:x, schedules: [{interval: soon}]}", "seconds"),
        ("{name: a, entrypoint: f.py:x, schedule: {cron: '0 2 * * *'}}", "schedules:"),
        ("{entrypoint: f.py:x}", "name"),
    ],
)
def test_load_deployments_names_what_is_wrong(tmp_path, deployment, message):
    path = tmp_path / "prefect.yaml"
    path.write_text(f"deployments:\n  - {deployment}\n")
    with pytest.raises(ScheduleError, match=message):
        load_deployments(path)


@pytest.mark.unit
def test_load_deployments_refuses_duplicate_names(tmp_path):
    path = tmp_path / "prefect.yaml"
    path.write_text("deployments:\n  - {name: a, entrypoint: f.py:x}\n  - {name: a, entrypoint: g.py:y}\n")
    with pytest.raises(ScheduleError, match="repeated: a"):
        load_deployments(path)


# --- Keys that Prefect does not read are errors -------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("deployment", "message"),
    [
        (
            "{name: nightly, entrypoint: f.py:x, shedules: [{cron: '0 2 * * *'}]}",
            r"deployment 'nightly': unknown key `shedules` \(did you mean `schedules`\?\)",
        ),
        (
            "{name: nightly, entrypoint: f.py:x, schedules: [{crron: '0 2 * * *'}]}",
            r"deployment 'nightly': schedules\[0\]: unknown key `crron` \(did you mean `cron`\?\)",
        ),
        (
            "{name: nightly, entrypoint: f.py:x, work_pool: {nme: recops-process}}",
            r"deployment 'nightly': work_pool: unknown key `nme`",
        ),
        (
            "{name: nightly, entrypoint: f.py:x, owner: me}",
            r"deployment 'nightly': unknown key `owner`; Prefect reads here: .*schedules",
        ),
    ],
)
def test_an_unknown_key_is_named_with_its_deployment(tmp_path, deployment, message):
    with pytest.raises(ScheduleError, match=message):
        load_deployments(_write(tmp_path, deployment))


@pytest.mark.unit
def test_an_unknown_top_level_key_is_named(tmp_path):
    path = tmp_path / "prefect.yaml"
    path.write_text("deployments: []\ndefinitons: {}\n")
    with pytest.raises(ScheduleError, match=r"unknown key `definitons` \(did you mean `definitions`\?\)"):
        load_deployments(path)


@pytest.mark.unit
def test_every_key_that_prefect_deploy_reads_is_accepted(tmp_path, monkeypatch):
    """The keys of Prefect's own prefect.yaml models, so that a Prefect upgrade that adds one shows."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    from prefect.cli.deploy._models import (
        DeploymentConfig,
        PrefectYamlModel,
        RawScheduleConfig,
        WorkPoolConfig,
    )

    schedule = {key: None for key in RawScheduleConfig.model_fields} | {"interval": 60, "active": True}
    deployment = {key: None for key in DeploymentConfig.model_fields if key != "schedule"}
    deployment |= {
        "name": "a",
        "entrypoint": "f.py:x",
        "schedules": [schedule],
        "work_pool": {key: None for key in WorkPoolConfig.model_fields} | {"name": "pool"},
    }
    top = {field.alias or key: None for key, field in PrefectYamlModel.model_fields.items()}
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(top | {"definitions": {"x": 1}, "deployments": [deployment]}))

    [spec] = load_deployments(path)
    assert (spec.name, spec.work_pool, spec.schedules[0].interval_seconds) == ("a", "pool", 60.0)


# --- Values: types and ranges -------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("interval", "message"),
    [
        ("0", "`interval` must be positive"),
        ("-60", "`interval` must be positive"),
        (".inf", "`interval` must be a finite number of seconds, not inf"),
        (".nan", "`interval` must be a finite number of seconds, not nan"),
        ("1.0e+300", "`interval` must be at most"),
        ("true", "`interval` is a number of seconds, not True"),
    ],
)
def test_an_interval_must_be_a_positive_finite_number_of_seconds(tmp_path, interval, message):
    path = _write(tmp_path, f"{{name: a, entrypoint: f.py:x, schedules: [{{interval: {interval}}}]}}")
    with pytest.raises(ScheduleError, match=rf"deployment 'a': schedules\[0\]: {message}"):
        load_deployments(path)


@pytest.mark.unit
@pytest.mark.parametrize("entry", ["a-string", "[name, a]", "42"])
def test_a_deployment_that_is_not_a_mapping_is_refused(tmp_path, entry):
    with pytest.raises(ScheduleError, match=r"deployments\[1\] must be a mapping"):
        load_deployments(_write(tmp_path, "{name: a, entrypoint: f.py:x}", entry))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("deployment", "message"),
    [
        ("{name: a, entrypoint: f.py:x, schedules: [nightly]}", r"schedules\[0\] must be a mapping"),
        ("{name: a, entrypoint: f.py:x, schedules: {cron: x}}", "`schedules` must be a list"),
        ("{name: a, entrypoint: f.py:x, work_pool: recops}", "`work_pool` must be a mapping"),
        ("{name: a, entrypoint: f.py:x, parameters: [1]}", "`parameters` must be a mapping"),
        ("{name: a, entrypoint: f.py:x, schedules: [{cron: 5}]}", "`cron` must be a string"),
        (
            "{name: a, entrypoint: f.py:x, schedules: [{interval: 60, active: maybe}]}",
            "`active` must be true",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_named(tmp_path, deployment, message):
    with pytest.raises(ScheduleError, match=message):
        load_deployments(_write(tmp_path, deployment))


@pytest.mark.unit
def test_specs_are_frozen_and_blank_keys_mean_the_default(tmp_path):
    path = _write(tmp_path, "{name: a, entrypoint: f.py:x, parameters: , schedules: , tags: solo}")
    [spec] = load_deployments(path)
    assert (spec.parameters, spec.schedules, spec.tags, spec.work_pool) == ({}, (), ("solo",), None)
    with pytest.raises(ValueError, match="frozen"):
        spec.name = "b"  # type: ignore[misc]
    assert ScheduleSpec(interval=90).describe() == "every 1m30s (UTC)"


@pytest.mark.unit
def test_status_says_so_before_starting_the_slow_temporary_api(monkeypatch):
    """With no server to ask, `schedule status` starts Prefect's temporary API (10-20 s): it says
    so first instead of sitting silent; with a server to ask it says nothing."""
    from recops.continuous import status as status_module

    async def read(source, *_args):
        return source

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(status_module, "running_local_server", lambda: None)
    monkeypatch.setattr(status_module, "_status", read)
    heard: list[str] = []
    assert status_module.status(on_progress=heard.append) == status_module.TEMPORARY_API
    assert len(heard) == 1 and "temporary API" in heard[0]
    heard.clear()
    assert status_module.status(api_url="http://127.0.0.1:9/api", on_progress=heard.append) == "given"
    assert heard == []


FLOW_FILE = """
from prefect import flow


@flow
def retrain(dataset: str, force: bool = False, epochs: int = 3) -> None:
    pass


def not_a_flow() -> None:
    pass
"""


@pytest.mark.unit
def test_the_projects_deployments_fit_their_flows_signatures():
    from recops.continuous.schedules import check_deployments

    checked = check_deployments(REPO / "prefect.yaml")
    assert [line.split(":")[0] for line in checked] == [
        "nightly-retrain",
        "hourly-drift-check",
        "weekly-maturity-report",
    ]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("deployment", "message"),
    [
        ("{name: a, entrypoint: f.py:retrain, parameters: {dataset: x, forse: true}}", "forse"),  # unknown
        ("{name: a, entrypoint: f.py:retrain, parameters: {force: true}}", "dataset"),  # required, missing
        ("{name: a, entrypoint: f.py:retrain, parameters: {dataset: x, epochs: many}}", "epochs"),  # type
        (  # a schedule's own parameters are merged in and checked too
            "{name: a, entrypoint: f.py:retrain, parameters: {dataset: x}, "
            "schedules: [{cron: '0 2 * * *', parameters: {epochs: lots}}]}",
            "schedules[0]",
        ),
        ("{name: a, entrypoint: f.py:not_a_flow}", "is not a flow"),
        ("{name: a, entrypoint: missing.py:retrain, parameters: {dataset: x}}", "does not load"),
        ("{name: a, entrypoint: gone/f.py:retrain, parameters: {dataset: x}}", "does not load"),
    ],
)
def test_parameters_that_the_flow_would_refuse_are_named(tmp_path, deployment, message):
    from recops.continuous.schedules import check_deployments

    (tmp_path / "f.py").write_text(FLOW_FILE)
    path = _write(tmp_path, deployment)
    with pytest.raises(ScheduleError, match=r"deployment 'a'") as error:
        check_deployments(path)
    assert message in str(error.value)


@pytest.mark.unit
def test_good_parameters_pass(tmp_path):
    from recops.continuous.schedules import check_deployments

    (tmp_path / "f.py").write_text(FLOW_FILE)
    path = _write(tmp_path, "{name: a, entrypoint: f.py:retrain, parameters: {dataset: x, epochs: '4'}}")
    assert check_deployments(path) == ["a: f.py:retrain accepts {'dataset': 'x', 'epochs': '4'}"]


MATURITY_ENTRYPOINT = f"{REPO}/src/recops/continuous/maturity_flow.py:maturity_report"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("parameters", "says"),
    [
        ("{require_level: 3}", "less than or equal to 2"),  # Google's levels are 0-2
        ("{require_level: high}", "require_level"),
        ("{required_level: 1}", "required_level"),
    ],
)
def test_a_maturity_parameter_the_flow_would_refuse_is_named(tmp_path, parameters, says):
    from recops.continuous.schedules import check_deployments

    path = _write(tmp_path, f"{{name: weekly, entrypoint: {MATURITY_ENTRYPOINT}, parameters: {parameters}}}")
    with pytest.raises(ScheduleError, match=r"deployment 'weekly'.*maturity-report\(\)") as error:
        check_deployments(path)
    assert says in str(error.value)


@pytest.mark.unit
def test_a_deployments_full_name_needs_a_readable_entrypoint(tmp_path):
    (tmp_path / "f.py").write_text(FLOW_FILE)
    path = _write(tmp_path, "{name: a, entrypoint: f.py:retrain}", "{name: b, entrypoint: gone.py:retrain}")
    found, missing = load_deployments(path)
    assert found.full_name == "retrain/a"
    with pytest.raises(ScheduleError, match=r"deployment 'b': cannot read gone.py:retrain"):
        _ = missing.full_name


@pytest.mark.unit
def test_a_module_beside_the_entrypoint_that_hides_an_installed_one_is_named(tmp_path):
    """A flow run keeps the entrypoint's folder first on sys.path: a yaml.py there is the `yaml`
    every later import gets (as a google.py beside a flow broke mlflow's google.protobuf)."""
    from recops.continuous.schedules import check_deployments

    (tmp_path / "f.py").write_text(FLOW_FILE)
    (tmp_path / "helpers.py").write_text("")  # no installed module of that name: harmless
    (tmp_path / "yaml.py").write_text("")
    path = _write(tmp_path, "{name: a, entrypoint: f.py:retrain, parameters: {dataset: x}}")
    with pytest.raises(
        ScheduleError, match=r"deployment 'a': entrypoint f.py:retrain: yaml.py hides"
    ) as error:
        check_deployments(path)
    assert "helpers" not in str(error.value)
