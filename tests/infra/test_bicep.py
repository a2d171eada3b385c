"""infra/**/*.bicep, read with pycep-parser 0.7.1 (no Bicep compiler runs here): the wiring and the
promises of issue #5, asserted on the parsed trees.

Every setting the code reads must be set in its app, derived from the code itself: a setting may be
left out only through the commented allow-lists below.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from common.settings_reader import SettingsError
from functions.settings import SETTING_NAMES, ControlSettings
from media_host import workers
from media_host.settings import DEFAULT_MODEL, MediaSettings
from tests.infra.bicep import (
    INFRA,
    MODULES,
    ROOT,
    bicep_files,
    body,
    condition,
    env_list,
    identifiers,
    main,
    module,
    parse,
    render,
)

# Read by the media host but deliberately not set in Azure.
MEDIA_NOT_SET = {
    "AZURE_OPENAI_API_KEY": "keys are disabled on the OpenAI account (disableLocalAuth): Entra ID only",
    # Azure deploys Azure OpenAI; OpenAI is the other vendor, and exactly one may be configured.
    "OPENAI_API_KEY": "selects OpenAI instead of the Azure OpenAI account this deployment creates",
    "OPENAI_BASE_URL": "OpenAI only",
    "OPENAI_REALTIME_MODEL": "OpenAI only",
    "AZURE_COMMUNICATION_CONNECTION_STRING": "ACS_ENDPOINT with the managed identity instead of a key",
    "ACS_JWT_ISSUER": "defaults to ACS's own issuer; only a local emulator overrides it",
    "ACS_OPENID_CONFIG_URL": "defaults to ACS's own OpenID configuration; only a local emulator overrides it",
    "MEDIA_EXTRA_TOOLS": "names code that must be in the image; a deployment that adds tools sets it",
    # Azure deploys an ACS number; Twilio numbers are served by the all-in-one process (fly.toml).
    "TWILIO_ACCOUNT_SID": "Twilio only (the all-in-one deployment)",
    "TWILIO_AUTH_TOKEN": "Twilio only (the all-in-one deployment)",
    "TWILIO_API_BASE_URL": "Twilio only; a local stand-in overrides it",
    "TWILIO_MODEL_AUDIO": "Twilio only",
    "MEDIA_HOST_URL": "the media host's public URL, which only Twilio's signature check needs",
    # Tuning knobs: the code's defaults are the tested values (README configuration table).
    "AOAI_VAD_THRESHOLD": "tuning knob",
    "AOAI_VAD_SILENCE_MS": "tuning knob",
    "AOAI_VAD_PREFIX_MS": "tuning knob",
    "MEDIA_PLAYBACK_LEAD_MS": "tuning knob",
    "MEDIA_PLAYBACK_CHUNK_MS": "tuning knob",
    "MEDIA_MODEL_APPEND_MS": "tuning knob",
    "TOOL_FILLER_MS": "tuning knob",
    "NO_INPUT_SECONDS": "tuning knob",
    "NO_INPUT_REPROMPTS": "tuning knob",
    "DTMF_TERMINATOR": "tuning knob",
    "DTMF_GAP_MS": "tuning knob",
    "MAX_CALL_WARNING_SECONDS": "tuning knob",
    "MODEL_SESSION_MAX_SECONDS": "the service's own limit, by vendor",
    "MEDIA_MAX_FRAME_BYTES": "tuning knob",
    "MEDIA_MAX_BUFFERED_SECONDS": "tuning knob",
    "MODEL_CONNECT_ATTEMPTS": "tuning knob",
    "MODEL_CONNECT_BACKOFF_SECONDS": "tuning knob",
    "MODEL_CONNECT_TIMEOUT_SECONDS": "tuning knob",
    "TOOL_TIMEOUT_SECONDS": "tuning knob",
    "MEDIA_IDLE_SECONDS": "tuning knob",
    "TELEMETRY_EXPORT_INTERVAL_SECONDS": "tuning knob",
}

# Read by the control plane but deliberately not set in Azure.
FUNCTIONS_NOT_SET = {
    "AZURE_COMMUNICATION_CONNECTION_STRING": "ACS_ENDPOINT with the managed identity instead of a key",
    "ACS_JWT_ISSUER": "defaults to ACS's own issuer; only a local emulator overrides it",
    "ACS_OPENID_CONFIG_URL": "defaults to ACS's own OpenID configuration; only a local emulator overrides it",
    "OUTBOUND_CALLS_PER_MINUTE": "tuning knob (the code's default, 10, is the tested value)",
    "CALLER_CHOOSES_PROFILE": "off by default: callers may pick the profile only where a deployment trusts them",
    "TWILIO_ACCOUNT_SID": "Twilio only (the all-in-one deployment)",
    "TWILIO_AUTH_TOKEN": "Twilio only (the all-in-one deployment)",
    "TELEMETRY_EXPORT_INTERVAL_SECONDS": "tuning knob",
}

# reference/infra.md section 2.3
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"

ACS = "Microsoft.Communication/communicationServices"
OPENAI = "Microsoft.CognitiveServices/accounts"
STORAGE = "Microsoft.Storage/storageAccounts"
APP_INSIGHTS = "Microsoft.Insights/components"
REGISTRY = "Microsoft.ContainerRegistry/registries"


class RecordingEnv(dict[str, str]):
    """An empty environment that remembers every name the settings code looks up."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)


def media_setting_names() -> set[str]:
    env = RecordingEnv()
    with pytest.raises(SettingsError):  # required settings are missing, but every one was read first
        MediaSettings.from_env(env)
    source = (ROOT / "media_host" / "settings.py").read_text(encoding="utf-8")
    static = set(re.findall(r'\br\.\w+\(\s*"([A-Z][A-Z0-9_]+)"', source))  # as test_packaging reads them
    names = env.read | static
    assert {"ACS_RESOURCE_ID", "AZURE_OPENAI_ENDPOINT", "MEDIA_DRAIN_SECONDS"} <= names
    return names


def function_setting_names() -> set[str]:
    env = RecordingEnv()
    ControlSettings.from_env(env)
    return set(SETTING_NAMES) | env.read


def resources_of(tree: dict[str, Any], kind: str, *, existing: bool = False) -> dict[str, dict[str, Any]]:
    return {
        name: r
        for name, r in tree.get("resources", {}).items()
        if r["type"] == kind and bool(r.get("existing")) == existing
    }


def module_call(name: str) -> dict[str, Any]:
    return body(main()["modules"][name])


def module_params(name: str) -> dict[str, str]:
    return {k: render(v) for k, v in module_call(name)["params"].items()}


def output_value(tree: dict[str, Any], name: str) -> str:
    return render(tree["outputs"][name]["value"])


# --- syntax and wiring ------------------------------------------------------------------------


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    tree = parse(path)
    assert tree.get("resources") or tree.get("modules"), f"{path} declares nothing"


# The API versions of reference/infra.md section 2 (AVM's, checked upstream): a typo here would only
# surface when Azure rejects the deployment.
API_VERSIONS = {
    "Microsoft.Resources/resourceGroups": "2024-03-01",
    "Microsoft.OperationalInsights/workspaces": "2025-07-01",
    "Microsoft.Insights/components": "2020-02-02",
    "Microsoft.Insights/diagnosticSettings": "2021-05-01-preview",
    "Microsoft.ManagedIdentity/userAssignedIdentities": "2024-11-30",
    ACS: "2025-09-01",
    "Microsoft.EventGrid/systemTopics": "2025-02-15",
    OPENAI: "2025-06-01",
    "Microsoft.CognitiveServices/accounts/deployments": "2025-06-01",
    STORAGE: "2024-01-01",
    "Microsoft.Storage/storageAccounts/blobServices": "2024-01-01",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "2024-01-01",
    "Microsoft.Web/serverfarms": "2025-03-01",
    "Microsoft.Web/sites": "2025-03-01",
    "Microsoft.Web/sites/config": "2025-03-01",
    "Microsoft.App/managedEnvironments": "2025-07-01",
    "Microsoft.App/containerApps": "2025-07-01",  # >= 2025-07-01 for terminationGracePeriodSeconds
    REGISTRY: "2023-07-01",
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
    # Operations (not in reference/infra.md; the GA versions public Bicep uses for these types)
    "Microsoft.Insights/workbooks": "2023-06-01",
    "Microsoft.Insights/actionGroups": "2023-01-01",
    "Microsoft.Insights/scheduledQueryRules": "2023-12-01",
}


def test_every_resource_uses_a_known_api_version() -> None:
    for path in bicep_files():
        for name, resource in parse(path).get("resources", {}).items():
            expected = API_VERSIONS.get(resource["type"])
            assert expected, (
                f"{path.name}:{name}: add {resource['type']} to API_VERSIONS (from reference/infra.md)"
            )
            assert resource["api_version"] == expected, f"{path.name}:{name}"


def test_main_follows_the_azd_conventions() -> None:
    tree = main()
    assert tree["globals"]["scope"]["value"] == "subscription"
    params = tree["parameters"]
    decorators = {name: {d["type"]: d["argument"] for d in p["decorators"]} for name, p in params.items()}
    assert decorators["environmentName"]["min_length"] == 1
    assert decorators["environmentName"]["max_length"] == 64
    for location in ("location", "openAiLocation"):
        assert decorators[location]["metadata"]["azd"]["type"] == "location", location
    assert params["principalId"]["default"] == ""
    assert params["mediaExists"]["type"] == "bool"
    assert params["mediaExists"]["default"] is False
    assert module_params("openAi")["location"] == "openAiLocation"

    (group,) = resources_of(tree, "Microsoft.Resources/resourceGroups").values()
    assert body(group)["name"] == "rg-${environmentName}"
    assert render(tree["variables"]["tags"]["value"]) == "{azd-env-name: environmentName}"

    values = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    given = {name: v["value"] for name, v in values.items()}
    assert given["environmentName"] == "${AZURE_ENV_NAME}"
    assert given["location"] == "${AZURE_LOCATION}"
    assert given["principalId"] == "${AZURE_PRINCIPAL_ID}"
    assert given["mediaExists"] == "${SERVICE_MEDIA_RESOURCE_EXISTS=false}"
    assert given["openAiLocation"].startswith("${AZURE_OPENAI_LOCATION")
    assert set(given) <= set(params), f"unknown parameters: {set(given) - set(params)}"
    required = {name for name, p in params.items() if p["default"] is None}
    assert required <= set(given), f"not given by main.parameters.json: {required - set(given)}"


def test_every_module_call_matches_the_module() -> None:
    tree = main()
    for name, call in tree["modules"].items():
        path = INFRA / call["detail"]["path"]
        assert path.is_file(), path
        declared = parse(path).get("parameters", {})
        given = set(body(call)["params"])
        required = {p for p, spec in declared.items() if spec["default"] is None}
        assert given <= set(declared), f"{name}: no such parameters {given - set(declared)}"
        assert required <= given, f"{name}: missing parameters {required - given}"
        assert render(body(call)["scope"]) == "rg", name

    # Every `<module>.outputs.<name>` used in main.bicep exists in that module.
    text = render({k: tree[k] for k in ("modules", "variables", "outputs")})
    for symbol, output in re.findall(r"\b(\w+)\.outputs\.(\w+)", text):
        path = INFRA / tree["modules"][symbol]["detail"]["path"]
        assert output in parse(path).get("outputs", {}), (
            f"{symbol}.outputs.{output} is not an output of {path}"
        )


def test_outputs_tell_azd_and_the_hooks_everything() -> None:
    outputs = main()["outputs"]
    for name in (
        "AZURE_LOCATION",
        "AZURE_TENANT_ID",
        "AZURE_RESOURCE_GROUP",
        "AZURE_CONTAINER_REGISTRY_ENDPOINT",
        "AZURE_FUNCTION_APP_NAME",
        "FUNCTION_BASE_URL",
        "MEDIA_HOST_URL",
        "ACS_ENDPOINT",
        "ACS_RESOURCE_ID",
        "ACS_NAME",
        "ACS_SYSTEM_TOPIC_NAME",
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_DEPLOYMENT",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
    ):
        assert name in outputs, name
        assert outputs[name]["type"] == "string", name
    assert output_value(main(), "MEDIA_HOST_URL") == "mediaHostUrl"
    assert output_value(main(), "ACS_RESOURCE_ID") == "communication.outputs.acsImmutableResourceId"
    assert output_value(main(), "FUNCTION_BASE_URL") == "functionApp.outputs.baseUrl"
    azd_sets = {"AZURE_SUBSCRIPTION_ID", "AZURE_ENV_NAME"}  # azd's own, not outputs
    for hook in ("postdeploy.sh", "postprovision.sh"):
        text = (INFRA / "hooks" / hook).read_text(encoding="utf-8")
        for name in re.findall(
            r"\b(AZURE_[A-Z_]+|FUNCTION_BASE_URL|MEDIA_HOST_URL|ACS_[A-Z_]+|APPLICATIONINSIGHTS_NAME)\b", text
        ):
            if name not in azd_sets and name not in ("AZURE_OPENAI_API_KEY", "AZURE_PRINCIPAL_ID"):
                assert name in outputs, f"the {hook} hook reads {name}, which main.bicep does not output"


SECRET_CALL = re.compile(r"\blist\w*\(", re.IGNORECASE)  # listKeys(), listConnectionStrings(), ...
SECRET_WORD = re.compile(r"(?i)(key|secret|password|credential|sas)s?\b|accountkey|sharedaccess")


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_no_secret_is_read_or_output(path: Path) -> None:
    tree = parse(path)
    everything = render({k: v for k, v in tree.items() if k != "globals"})
    assert not SECRET_CALL.search(everything), f"{path} reads a secret with a list*() call"
    for name, output in tree.get("outputs", {}).items():
        secure = any(d["type"] == "secure" for d in output["decorators"])
        if not secure:
            value = render(output["value"])
            assert not SECRET_WORD.search(value), f"{path}: output {name} = {value} looks like a secret"
            assert not SECRET_WORD.search(name), f"{path}: output {name} looks like a secret"


# --- the media host on Container Apps ---------------------------------------------------------


def media_app() -> tuple[dict[str, Any], dict[str, Any]]:
    tree = module("media-app")
    (app,) = resources_of(tree, "Microsoft.App/containerApps").values()
    config = body(app)
    (container,) = config["properties"]["template"]["containers"]
    return config, container


def test_media_host_is_always_on_and_scales_on_live_calls_not_requests() -> None:
    config, _ = media_app()
    scale = config["properties"]["template"]["scale"]
    assert scale["minReplicas"] == 1
    assert render(scale["maxReplicas"]) == "maxReplicas"
    assert module_params("mediaApp")["maxReplicas"] == "mediaMaxReplicas"
    (rule,) = scale["rules"]
    assert "http" not in rule, "the HTTP scaler counts request starts, not open WebSockets"
    assert rule["custom"]["type"] == "cpu"
    assert rule["custom"]["metadata"]["type"] == "Utilization"
    assert render(config["tags"]) == "union(tags, {azd-service-name: media})"


def test_media_ingress_and_probes_match_the_image() -> None:
    tree = module("media-app")
    port = tree["variables"]["port"]["value"]
    dockerfile = (ROOT / "media_host" / "Dockerfile").read_text(encoding="utf-8")
    assert f"EXPOSE {port}" in dockerfile
    assert f"PORT={port}" in dockerfile

    config, container = media_app()
    ingress = config["properties"]["configuration"]["ingress"]
    assert ingress["external"] is True
    assert ingress["transport"] == "auto"
    assert ingress["allowInsecure"] is False
    assert render(ingress["targetPort"]) == "port"
    probes = {p["type"]: p for p in container["probes"]}
    assert probes["Liveness"]["httpGet"]["path"] == "/healthz"
    assert probes["Readiness"]["httpGet"]["path"] == "/readyz"
    for probe in probes.values():
        assert render(probe["httpGet"]["port"]) == "port"
    assert env_list(container)["PORT"] == "string(port)"


def test_termination_grace_period_follows_the_drain_setting() -> None:
    config, container = media_app()
    grace = render(config["properties"]["template"]["terminationGracePeriodSeconds"])
    drain = env_list(container)["MEDIA_DRAIN_SECONDS"]
    assert drain == "string(drainSeconds)"
    match = re.fullmatch(r"drainSeconds \+ (\d+)", grace)
    assert match, f"terminationGracePeriodSeconds = {grace}: not fed by the drainSeconds parameter"
    # Several workers: their manager waits the drain plus its own margin, and must be done before SIGKILL.
    assert int(match[1]) > workers.AFTER_DRAIN_SECONDS
    assert module_params("mediaApp")["drainSeconds"] == "mediaDrainSeconds"


def test_a_replica_runs_one_media_worker_per_whole_vcpu() -> None:
    # Not the host's default (the CPUs it may run on): a replica's vCPU is a quota on a larger node.
    _, container = media_app()
    assert env_list(container)["MEDIA_WORKERS"] == "string(workers)"
    workers_per_vcpu = render(module("media-app")["variables"]["workers"]["value"])
    assert workers_per_vcpu == "max(1, int(split(cpu, .)[0]))"  # the whole vCPUs, at least one


def test_media_image_is_a_placeholder_until_azd_has_deployed_one() -> None:
    tree = module("media-app")
    (existing,) = resources_of(tree, "Microsoft.App/containerApps", existing=True).values()
    assert condition(existing) == "exists"
    _, container = media_app()
    assert render(container["image"]) == (
        "exists ? existingApp.properties.template.containers[0].image : placeholderImage"
    )
    assert module_params("mediaApp")["exists"] == "mediaExists"


def test_media_runs_as_its_identity_for_the_registry_and_azure() -> None:
    config, container = media_app()
    assert render(config["identity"]) == "{type: UserAssigned, userAssignedIdentities: {${identityId}: {}}}"
    (registry,) = config["properties"]["configuration"]["registries"]
    assert render(registry) == "{server: registryLoginServer, identity: identityId}"
    assert env_list(container)["AZURE_CLIENT_ID"] == "identityClientId"
    params = module_params("mediaApp")
    assert params["identityId"] == "identities.outputs.mediaIdentityId"
    assert params["identityClientId"] == "identities.outputs.mediaClientId"


def test_every_media_setting_is_set_or_deliberately_left_out() -> None:
    names = media_setting_names()
    assert set(MEDIA_NOT_SET) <= names, f"allow-listed but not read: {set(MEDIA_NOT_SET) - names}"
    assert all(MEDIA_NOT_SET.values())
    _, container = media_app()
    env = env_list(container)
    missing = names - set(MEDIA_NOT_SET) - set(env)
    assert not missing, f"read by media_host but not set in media-app.bicep: {sorted(missing)}"
    assert not set(MEDIA_NOT_SET) & set(env), "a setting is both allow-listed and set"
    assert all("secretRef" not in entry for entry in container["env"])

    params = module_params("mediaApp")
    assert env["ACS_RESOURCE_ID"] == "acsImmutableResourceId"
    assert params["acsImmutableResourceId"] == "communication.outputs.acsImmutableResourceId"
    assert env["ACS_ENDPOINT"] == "acsEndpoint"
    assert params["acsEndpoint"] == "communication.outputs.acsEndpoint"
    assert env["AZURE_OPENAI_ENDPOINT"] == "openAiEndpoint"
    assert params["openAiEndpoint"] == "openAi.outputs.endpoint"
    assert env["AZURE_OPENAI_DEPLOYMENT"] == "openAiDeployment"
    assert env["APPLICATIONINSIGHTS_CONNECTION_STRING"] == "appInsightsConnectionString"
    assert (
        env["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD;ClientId=${identityClientId}"
    )
    for setting, param in (
        ("AOAI_VOICE", "voice"),
        ("TRANSFER_TARGET", "transferTarget"),
        ("MAX_CONCURRENT_CALLS", "maxConcurrentCalls"),
        ("MAX_CALL_SECONDS", "maxCallSeconds"),
    ):
        assert param in identifiers(env[setting]), setting
        assert param in params, f"main.bicep does not pass {param} to the media app"
    assert parse(MODULES / "media-app.bicep")["parameters"]["transferTarget"]["default"] == ""


# --- the control plane on Flex Consumption ----------------------------------------------------


def function_app() -> tuple[dict[str, Any], dict[str, str]]:
    tree = module("function-app")
    (site,) = resources_of(tree, "Microsoft.Web/sites").values()
    (settings,) = resources_of(tree, "Microsoft.Web/sites/config").values()
    assert body(settings)["name"] == "appsettings"
    return body(site), {k: render(v) for k, v in body(settings)["properties"].items()}


def test_function_app_is_python_311_on_flex_consumption_with_identity_based_storage() -> None:
    tree = module("function-app")
    (plan,) = resources_of(tree, "Microsoft.Web/serverfarms").values()
    assert body(plan)["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert body(plan)["properties"]["reserved"] is True

    site, settings = function_app()
    assert site["kind"] == "functionapp,linux"
    assert render(site["tags"]) == "union(tags, {azd-service-name: functions})"
    assert site["properties"]["httpsOnly"] is True
    flex = site["properties"]["functionAppConfig"]
    assert flex["runtime"] == {"name": "python", "version": "3.11"}
    storage = flex["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert render(storage["authentication"]) == (
        "{type: UserAssignedIdentity, userAssignedIdentityResourceId: identityId}"
    )
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert "AzureWebJobsStorage__blobServiceUri" in settings
    assert "AzureWebJobsStorage" not in settings, "a storage connection string would need a key"
    # Flex Consumption takes the runtime from functionAppConfig and rejects these settings.
    assert not {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION"} & set(settings)


def test_every_control_plane_setting_is_set_or_deliberately_left_out() -> None:
    names = function_setting_names()
    assert set(FUNCTIONS_NOT_SET) <= names, f"allow-listed but not read: {set(FUNCTIONS_NOT_SET) - names}"
    assert all(FUNCTIONS_NOT_SET.values())
    _, settings = function_app()
    missing = names - set(FUNCTIONS_NOT_SET) - set(settings)
    assert not missing, f"read by functions/ but not set in function-app.bicep: {sorted(missing)}"
    assert not set(FUNCTIONS_NOT_SET) & set(settings), "a setting is both allow-listed and set"

    params = module_params("functionApp")
    assert settings["ACS_RESOURCE_ID"] == "acsImmutableResourceId"
    assert params["acsImmutableResourceId"] == "communication.outputs.acsImmutableResourceId"
    assert (
        output_value(module("communication"), "acsImmutableResourceId")
        == "acs.properties.immutableResourceId"
    )
    assert settings["ACS_ENDPOINT"] == "acsEndpoint"
    assert output_value(module("communication"), "acsEndpoint") == "https://${acs.properties.hostName}"
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert params["identityClientId"] == "identities.outputs.functionsClientId"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "Authorization=AAD;ClientId=${identityClientId}"
    )
    # Its own URL, known once the site exists (the settings are a child resource of the site).
    assert settings["CALLBACK_URI_HOST"] == "https://${functionApp.properties.defaultHostName}"


def test_outbound_calls_are_off_until_the_operator_lists_numbers() -> None:
    _, settings = function_app()
    assert settings["OUTBOUND_ALLOW_LIST"] == "outboundAllowList"
    assert module_params("functionApp")["outboundAllowList"] == "outboundAllowList"
    assert module("function-app")["parameters"]["outboundAllowList"]["default"] == ""
    assert main()["parameters"]["outboundAllowList"]["default"] == ""
    values = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert values["outboundAllowList"]["value"] == "${OUTBOUND_ALLOW_LIST}"  # empty unless azd env sets it


def test_media_host_url_comes_from_the_environment_domain_without_a_cycle() -> None:
    _, settings = function_app()
    assert settings["MEDIA_HOST_URL"] == "mediaHostUrl"
    assert module_params("functionApp")["mediaHostUrl"] == "mediaHostUrl"
    url = render(main()["variables"]["mediaHostUrl"]["value"])
    assert url == "wss://${mediaAppName}.${containerApps.outputs.defaultDomain}"
    assert module_params("mediaApp")["appName"] == "mediaAppName"
    assert "mediaApp" not in identifiers(render(module_call("functionApp")))


# --- security promises ------------------------------------------------------------------------


def test_openai_is_entra_only_with_a_gpt_realtime_deployment() -> None:
    tree = module("openai")
    (account,) = resources_of(tree, OPENAI).values()
    config = body(account)
    assert config["kind"] in ("OpenAI", "AIServices")
    assert config["properties"]["disableLocalAuth"] is True
    assert render(config["properties"]["customSubDomainName"]) == "accountName"
    (deployment,) = resources_of(tree, "Microsoft.CognitiveServices/accounts/deployments").values()
    config = body(deployment)
    assert config["sku"]["name"] == "GlobalStandard"
    assert render(config["sku"]["capacity"]) == "capacity"
    assert render(config["properties"]["model"]) == "{format: OpenAI, name: modelName, version: modelVersion}"
    params = module_params("openAi")
    assert params["modelVersion"] == "realtimeModelVersion"
    assert params["capacity"] == "realtimeCapacity"
    assert params["modelName"] == "realtimeModelName"
    assert main()["parameters"]["realtimeModelName"]["default"] == "gpt-realtime"


def test_realtime_model_name_and_version_are_azd_parameters() -> None:
    # gpt-realtime is announced for retirement on 2027-01-20: switching is `azd env set`, not an edit.
    values = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    given = {name: v["value"] for name, v in values.items()}
    assert given["realtimeModelName"] == f"${{AZURE_OPENAI_REALTIME_MODEL={DEFAULT_MODEL}}}"
    version = main()["parameters"]["realtimeModelVersion"]["default"]
    assert given["realtimeModelVersion"] == f"${{AZURE_OPENAI_REALTIME_MODEL_VERSION={version}}}"
    assert main()["parameters"]["realtimeModelName"]["default"] == DEFAULT_MODEL
    # the media host is told the deployment, whatever model it holds
    assert module_params("mediaApp")["openAiDeployment"] == "openAi.outputs.deploymentName"
    assert output_value(module("openai"), "deploymentName") == "realtime.name"


def test_app_insights_takes_entra_tokens_only() -> None:
    (component,) = resources_of(module("monitoring"), APP_INSIGHTS).values()
    assert body(component)["properties"]["DisableLocalAuth"] is True


def test_no_storage_account_accepts_shared_keys() -> None:
    accounts = [
        (path, body(r)) for path in bicep_files() for r in resources_of(parse(path), STORAGE).values()
    ]
    assert accounts
    for path, config in accounts:
        assert config["properties"]["allowSharedKeyAccess"] is False, path
        assert config["properties"]["allowBlobPublicAccess"] is False, path


def test_registry_has_no_admin_user() -> None:
    (registry,) = resources_of(module("container-apps"), REGISTRY).values()
    assert body(registry)["properties"]["adminUserEnabled"] is False
    assert body(registry)["properties"]["anonymousPullEnabled"] is False


def test_container_apps_environment_logs_to_log_analytics_without_a_shared_key() -> None:
    tree = module("container-apps")
    (environment,) = resources_of(tree, "Microsoft.App/managedEnvironments").values()
    assert body(environment)["properties"]["appLogsConfiguration"] == {"destination": "azure-monitor"}
    (logs,) = resources_of(tree, "Microsoft.Insights/diagnosticSettings").values()
    assert render(body(logs)["scope"]) == "managedEnvironment"
    assert render(body(logs)["properties"]["workspaceId"]) == "workspaceId"
    assert module_params("containerApps")["workspaceId"] == "monitoring.outputs.workspaceId"


def test_acs_takes_entra_tokens_only() -> None:
    # Both apps reach ACS with ACS_ENDPOINT and their identity; no key is configured anywhere.
    (acs,) = resources_of(module("communication"), ACS).values()
    assert body(acs)["properties"]["disableLocalAuth"] is True
    for tree in (module("function-app"), module("media-app")):
        assert "AZURE_COMMUNICATION_CONNECTION_STRING" not in render(tree)


def test_event_grid_system_topic_is_on_the_acs_resource() -> None:
    tree = module("communication")
    (acs_name, acs), *_ = resources_of(tree, ACS).items()
    assert body(acs)["location"] == "global"
    assert render(body(acs)["properties"]["dataLocation"]) == "dataLocation"
    (topic,) = resources_of(tree, "Microsoft.EventGrid/systemTopics").values()
    assert body(topic)["location"] == "global"
    assert body(topic)["properties"]["topicType"] == "Microsoft.Communication.CommunicationServices"
    assert render(body(topic)["properties"]["source"]) == f"{acs_name}.id"
    # The webhook subscription carries the function key, so the postdeploy hook makes it, not Bicep.
    for path in bicep_files():
        kinds = {r["type"] for r in parse(path).get("resources", {}).values()}
        assert "Microsoft.EventGrid/systemTopics/eventSubscriptions" not in kinds, path


# --- role assignments -------------------------------------------------------------------------


EXPECTED_ROLES = {
    # (principal parameter, scope resource type, role definition id)
    ("functionsPrincipalId", ACS, CONTRIBUTOR),
    ("functionsPrincipalId", STORAGE, BLOB_DATA_OWNER),
    ("functionsPrincipalId", APP_INSIGHTS, METRICS_PUBLISHER),
    ("mediaPrincipalId", OPENAI, OPENAI_USER),
    ("mediaPrincipalId", ACS, CONTRIBUTOR),
    ("mediaPrincipalId", REGISTRY, ACR_PULL),
    ("mediaPrincipalId", APP_INSIGHTS, METRICS_PUBLISHER),
    ("developerPrincipalId", OPENAI, OPENAI_USER),
    ("developerPrincipalId", ACS, CONTRIBUTOR),
    ("developerPrincipalId", APP_INSIGHTS, METRICS_PUBLISHER),
}


def role_assignments() -> dict[str, tuple[str, str, str, dict[str, Any], str | None]]:
    """Every role assignment in infra/: name -> (principal, scope type, role id, config, condition)."""
    found = {}
    for path in bicep_files():
        tree = parse(path)
        for name, assignment in resources_of(tree, "Microsoft.Authorization/roleAssignments").items():
            config = body(assignment)
            scope = render(config.get("scope"))
            scoped = tree["resources"].get(scope)
            assert scoped is not None and scoped.get("existing"), (
                f"{path.name}:{name} is scoped to {scope}, not to one named resource"
            )
            role = render(config["properties"]["roleDefinitionId"])
            match = re.fullmatch(
                r"subscription_resource_id\(Microsoft\.Authorization/roleDefinitions, (.+)\)", role
            )
            assert match, f"{name}: {role}"
            role_arg = role_id = match.group(1)
            if role_id.startswith("roles."):
                role_id = tree["variables"]["roles"]["value"][role_id.removeprefix("roles.")]
            principal = render(config["properties"]["principalId"])
            # Stable names: the same principal, role and scope always give the same assignment.
            assert render(config["name"]) == f"guid({scope}.id, {principal}, {role_arg})", name
            found[name] = (principal, scoped["type"], role_id, config, condition(assignment))
    return found


def test_every_role_assignment_is_the_expected_principal_role_and_scope() -> None:
    found = role_assignments()
    assert {(p, s, r) for p, s, r, _, _ in found.values()} == EXPECTED_ROLES
    assert len(found) == len(EXPECTED_ROLES), "a role is assigned twice"
    for name, (principal, _, _, config, cond) in found.items():
        if principal == "developerPrincipalId":
            assert cond == "!empty(developerPrincipalId)", name
            assert render(config["properties"]["principalType"]) == "developerPrincipalType"
        else:
            assert cond is None, name
            assert config["properties"]["principalType"] == "ServicePrincipal", name


def test_role_assignments_reach_the_resources_main_creates() -> None:
    params = module_params("roles")
    assert params["functionsPrincipalId"] == "identities.outputs.functionsPrincipalId"
    assert params["mediaPrincipalId"] == "identities.outputs.mediaPrincipalId"
    assert params["developerPrincipalId"] == "principalId"
    assert params["developerPrincipalType"] == "principalType"
    # Each existing resource in roles.bicep is named after the resource its module creates.
    roles = module("roles")
    creators = {
        ACS: ("communication", "acsName", "acs"),
        OPENAI: ("openAi", "openAiName", "account"),
        STORAGE: ("storage", "storageName", "storage"),
        APP_INSIGHTS: ("monitoring", "appInsightsName", "appInsights"),
        REGISTRY: ("containerApps", "registryName", "registry"),
    }
    for kind, (module_symbol, param, symbol) in creators.items():
        (existing,) = resources_of(roles, kind, existing=True).values()
        assert render(body(existing)["name"]) == param
        output = params[param].removeprefix(f"{module_symbol}.outputs.")
        created = parse(INFRA / main()["modules"][module_symbol]["detail"]["path"])
        assert output_value(created, output) == f"{symbol}.name", kind
        assert symbol in resources_of(created, kind)


def test_acr_pull_exists_before_the_media_app_and_storage_rights_before_the_function_app() -> None:
    found = role_assignments()
    assert any(p == "mediaPrincipalId" and r == ACR_PULL for p, _, r, _, _ in found.values())
    assert main()["modules"]["roles"]["detail"]["path"] == "modules/roles.bicep"
    assert "roles" in module_call("mediaApp")["dependsOn"]
    assert "roles" in module_call("functionApp")["dependsOn"]
