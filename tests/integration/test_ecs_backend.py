"""The ECS deploy backend against the AWS emulator (moto's server on 127.0.0.1, through boto3):
the service is set to the champion's image by a new task-definition revision, a rollback
returns to the earlier revision instead of registering another, a missing image or container
is a clear error, and an unfinished rollout is not reported as serving the new version."""

from __future__ import annotations

import json

import pytest

from recops.serving.ecs import EcsBackend, EcsDeployError, EcsTarget, _registrable, version_of_image
from recops.serving.reconcile import default_backend
from recops.store import open_store
from tests.emulator import ecs_service, emulator, push_image

pytestmark = pytest.mark.integration


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")  # the emulator's healthy tasks
    with emulator() as emu:
        for name, value in emu.env().items():
            monkeypatch.setenv(name, value)
        service = ecs_service(emu)
        for name, value in service.env().items():
            monkeypatch.setenv(name, value)
        yield emu, service


def revisions(emu, family="recops-bento") -> list[str]:
    return emu.client("ecs").list_task_definitions(familyPrefix=family)["taskDefinitionArns"]


def current_task_definition(emu, service) -> dict:
    ecs = emu.client("ecs")
    arn = ecs.describe_services(cluster=service.cluster, services=[service.service])["services"][0][
        "taskDefinition"
    ]
    return ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])


def test_version_of_image():
    assert version_of_image("1.dkr.ecr.us-east-1.amazonaws.com/recops-bento:v12") == "12"
    assert version_of_image("localhost:5000/recops-bento:v3") == "3"
    assert version_of_image("localhost:5000/recops-bento") is None
    assert version_of_image("recops-bento:latest") is None


def test_deploy_registers_a_revision_naming_the_image_and_rollback_reuses_the_old_one(aws):
    emu, service = aws
    backend = default_backend()
    assert isinstance(backend, EcsBackend)
    image_v1, _ = backend.deployed()
    assert backend.deployed()[1] == "1"
    assert backend.services(None, 0)[0].model_version == "1"

    push_image(emu, service.repository, "v2")
    image_v2, built = backend.artifact(2)
    assert image_v2.endswith("/recops-bento:v2") and not built
    backend.deploy(image_v2)
    assert len(revisions(emu)) == 2
    current = current_task_definition(emu, service)
    assert current["taskDefinition"]["revision"] == 2
    (container,) = current["taskDefinition"]["containerDefinitions"]
    assert container["image"] == image_v2
    assert container["environment"] == [{"name": "RECOPS_API_TOKEN_REQUIRED", "value": "1"}]  # kept
    assert current["taskDefinition"]["cpu"] == "1024"
    assert {"key": "recops:model-version", "value": "2"} in current["tags"]
    (state,) = backend.services("2", timeout=5)
    assert state.model_version == "2", state
    assert "1/1 tasks running" in state.detail

    backend.deploy(image_v1)  # a rollback: back to revision 1, nothing new registered
    assert len(revisions(emu)) == 2
    assert current_task_definition(emu, service)["taskDefinition"]["revision"] == 1
    assert backend.deployed() == (image_v1, "1")

    store = open_store()  # one record per deploy, in the store (here RECOPS_HOME)
    records = [json.loads(store.read_text(e.key)) for e in store.list("serving/deployments")]
    assert [(r["model_version"], r["task_definition"].rsplit(":", 1)[1]) for r in records] == [
        ("2", "2"),
        ("1", "1"),
    ]


def test_missing_image_or_container_is_a_clear_error(aws):
    emu, service = aws
    backend = EcsBackend(EcsTarget.from_env())
    with pytest.raises(EcsDeployError, match=r"no serving image recops-bento:v9 in ECR for model version 9"):
        backend.artifact(9)
    wrong = EcsBackend(EcsTarget(service.cluster, service.service, service.repository, container="web"))
    with pytest.raises(EcsDeployError, match=r"has no container 'web' \(it has \['app'\]\)"):
        wrong.deployed()
    with pytest.raises(EcsDeployError, match="no ECS service ecs://recops-bento/nope"):
        EcsBackend(EcsTarget(service.cluster, "nope", service.repository)).deployed()
    assert len(revisions(emu)) == 1  # nothing registered by the failures


def test_target_needs_its_variables():
    with pytest.raises(EcsDeployError, match="RECOPS_ECS_CLUSTER, RECOPS_ECS_SERVICE, RECOPS_ECR_REPOSITORY"):
        EcsTarget.from_env({})


def test_an_unfinished_rollout_is_not_the_new_version(aws, monkeypatch):
    emu, service = aws
    ecs = emu.client("ecs")
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")  # tasks that never become healthy
    ecs.create_service(
        cluster=service.cluster,
        serviceName="stuck",
        taskDefinition=revisions(emu)[0],
        desiredCount=2,
        launchType="FARGATE",
    )
    backend = EcsBackend(EcsTarget(service.cluster, "stuck", service.repository))
    (state,) = backend.services("1", timeout=1)
    assert state.model_version is None
    assert "0/2 tasks running" in state.detail and "in progress" in state.detail


def test_a_revision_terraform_registered_since_is_the_template_of_the_next_deploy(aws):
    emu, service = aws
    ecs = emu.client("ecs")
    backend = EcsBackend(EcsTarget.from_env())
    image_v1, _ = backend.deployed()
    push_image(emu, service.repository, "v2")
    backend.deploy(backend.artifact(2)[0])  # revision 2
    # `terraform apply` with a changed environment registers revision 3 with its bootstrap
    # image tag (the service ignores it)
    template = ecs.describe_task_definition(taskDefinition=revisions(emu)[0])["taskDefinition"]
    (container,) = template["containerDefinitions"]
    container["environment"] = [{"name": "RECOPS_BENTO_WORKERS", "value": "4"}]
    ecs.register_task_definition(
        family=template["family"],
        networkMode=template["networkMode"],
        requiresCompatibilities=template["requiresCompatibilities"],
        cpu=template["cpu"],
        memory=template["memory"],
        containerDefinitions=[container | {"image": image_v1.replace(":v1", ":bootstrap")}],
    )
    backend.deploy(image_v1)  # not revision 1 again: it lacks what Terraform changed
    current = current_task_definition(emu, service)["taskDefinition"]
    assert current["revision"] == 4
    assert current["containerDefinitions"][0]["image"] == image_v1
    assert current["containerDefinitions"][0]["environment"] == [
        {"name": "RECOPS_BENTO_WORKERS", "value": "4"}
    ]


def test_a_deploy_that_died_after_registering_is_finished_by_the_next_one(aws):
    emu, service = aws
    backend = EcsBackend(EcsTarget.from_env())
    push_image(emu, service.repository, "v2")
    image_v2 = backend.artifact(2)[0]
    # the process died between register-task-definition and update-service
    template = emu.client("ecs").describe_task_definition(taskDefinition=revisions(emu)[0])["taskDefinition"]
    orphan = backend._register(backend._with_image(_registrable(template), image_v2), image_v2)
    assert backend.deployed()[1] == "1"  # the service never moved
    backend.deploy(image_v2)  # the next reconcile
    assert current_task_definition(emu, service)["taskDefinition"]["taskDefinitionArn"] == orphan
    assert len(revisions(emu)) == 2  # the orphan was reused, not registered again
