"""azure.yaml against azd's own JSON schema (a copy in infra/schema, so nothing outside the repo is
needed), and the paths it names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml  # type: ignore[import-untyped]

from tests.infra.bicep import INFRA, ROOT, body, module, render

SCHEMA = INFRA / "schema" / "azure.yaml.schema.json"


def azure_yaml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    return loaded


def test_azure_yaml_validates_against_the_azd_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator_class(schema).iter_errors(azure_yaml())
    ]
    assert errors == []


def test_the_schema_catches_mistakes() -> None:
    # The validation above is only worth something if the schema really constrains services and hooks.
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    broken = azure_yaml()
    broken["services"]["media"]["docker"]["remoteBuild"] = "yes"
    broken["hooks"]["postdeploy"]["posix"]["shel"] = "sh"
    broken["services"]["media"]["image"] = "nginx"  # image and project together on a container app
    assert len(list(validator.iter_errors(broken))) >= 3


def test_services_are_the_two_planes() -> None:
    config = azure_yaml()
    assert config["infra"]["provider"] == "bicep"
    assert (ROOT / config["infra"]["path"] / "main.bicep").is_file()
    assert (ROOT / config["infra"]["path"] / "main.parameters.json").is_file()

    functions = config["services"]["functions"]
    assert functions == {"project": ".", "language": "python", "host": "function"}
    assert (ROOT / functions["project"] / "function_app.py").is_file()
    assert (ROOT / functions["project"] / "host.json").is_file()

    media = config["services"]["media"]
    assert media["host"] == "containerapp"
    assert media["language"] == "python"
    project = ROOT / media["project"]
    assert (project / media["docker"]["path"]).resolve() == ROOT / "media_host" / "Dockerfile"
    assert (project / media["docker"]["context"]).resolve() == ROOT, "the image needs common/ and prompts/"
    assert media["docker"]["remoteBuild"] is True


def test_service_names_match_the_bicep_tags() -> None:
    # azd finds each service's resource by its azd-service-name tag.
    services = set(azure_yaml()["services"])
    tags = set()
    for name, kind in (("function-app", "Microsoft.Web/sites"), ("media-app", "Microsoft.App/containerApps")):
        for resource in module(name)["resources"].values():
            if resource["type"] == kind and not resource["existing"]:
                tags.add(render(body(resource)["tags"]).split("azd-service-name: ")[1].rstrip("})"))
    assert tags == services


def test_postdeploy_hook_is_wired_for_both_shells() -> None:
    hook = azure_yaml()["hooks"]["postdeploy"]
    assert hook["posix"]["shell"] == "sh"
    assert hook["windows"]["shell"] == "pwsh"
    for platform, suffix in (("posix", ".sh"), ("windows", ".ps1")):
        path = ROOT / hook[platform]["run"]
        assert path.is_file() and path.suffix == suffix, path
        assert hook[platform].get("continueOnError", False) is False, "a failed subscription must stop azd"


def test_funcignore_keeps_deployment_files_out_of_the_function_package() -> None:
    entries = set((ROOT / ".funcignore").read_text(encoding="utf-8").split())
    assert {"infra/", "media_host/", "tests/", ".venv", ".dockerignore", "azure.yaml"} <= entries
    # azd's Python restore makes <project dir>_env beside the project: not part of the package either.
    assert "*_env/" in entries


def test_schema_copy_is_complete() -> None:
    schema = json.loads(Path(SCHEMA).read_text(encoding="utf-8"))
    assert schema["$schema"].startswith("https://json-schema.org/draft/2019-09")
    assert {"name", "services", "hooks", "infra"} <= set(schema["properties"])
