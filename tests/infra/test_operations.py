"""Operations in infra/ (issue 14): the calls workbook and the alert rules read only what the product
writes (names derived from the code, tests/infra/telemetry_names.py), the alerts tell the operator only
when an address is given, and the parameters behind them (regions, model, retention, thresholds) are
azd's and CI's."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from media_host.call_events import ENDED_BY, AssistantPrompted
from tests.infra import kql
from tests.infra.bicep import INFRA, ROOT, body, main, module, render
from tests.infra.telemetry_names import written

WORKBOOK = INFRA / "workbook" / "calls.workbook.json"
TABLES = {"customEvents", "customMetrics", "requests", "dependencies", "traces", "exceptions"}
COMPONENTS = "microsoft.insights/components"
LOAD_TEXT_LIMIT = 131072  # characters loadTextContent() reads at most

# reference/infra.md and the model matrix cited in main.bicep: where a realtime model is Global Standard.
REALTIME_REGIONS = {"canadacentral", "centralus", "eastus2", "francecentral", "swedencentral"}


def workbook() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(WORKBOOK.read_text(encoding="utf-8"))
    return loaded


def workbook_queries() -> dict[str, str]:
    return {item["name"]: item["content"]["query"] for item in workbook()["items"] if item["type"] == 3}


def alerts() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = module("operations")["variables"]["alerts"]["value"]
    return found


def alert_queries() -> dict[str, str]:
    return {f"alert {alert['name']}": alert["query"] for alert in alerts()}


def all_queries() -> dict[str, str]:
    return {**workbook_queries(), **alert_queries()}


def parameter_values() -> dict[str, str]:
    values = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    return {name: v["value"] for name, v in values.items()}


def decorators(name: str) -> dict[str, Any]:
    return {d["type"]: d["argument"] for d in main()["parameters"][name]["decorators"]}


def operations_call() -> dict[str, str]:
    return {k: render(v) for k, v in body(main()["modules"]["operations"])["params"].items()}


# --- the product's own names ----------------------------------------------------------------------


def test_the_names_are_read_from_the_code() -> None:
    # Not vacuous: the derivation finds what README's "For auditors" lists.
    names = written()
    assert {
        "CallEnded",
        "MediaRefused",
        "AssistantPrompted",
        "KeypadEntry",
        "ModelSessionRolledOver",
    } <= names.events
    assert {
        "turn_latency_ms",
        "first_assistant_audio_ms",
        "active_calls",
        "telemetry_dropped",
    } <= names.metrics
    assert {"why", "who", "reason", "records", "correlation_id", "plane"} <= names.dimensions
    assert {"duration_s", "session_s"} <= names.measurements
    assert not names.events & names.metrics


@pytest.mark.parametrize("name", sorted(all_queries()))
def test_every_query_reads_only_what_the_product_writes(name: str) -> None:
    query = kql.parse(all_queries()[name])
    names = written()
    assert query.tables, f"{name}: no source table found"
    assert query.tables <= TABLES, f"{name}: unknown tables {query.tables - TABLES}"
    if query.tables == {"customEvents"}:
        known = names.events
    elif query.tables == {"customMetrics"}:
        known = names.metrics
    else:
        known = names.events | names.metrics
    assert query.names <= known, f"{name}: the product writes no {sorted(query.names - known)}"
    assert query.dimensions <= names.dimensions, (
        f"{name}: no record has customDimensions {sorted(query.dimensions - names.dimensions)}"
    )
    assert query.measurements <= names.measurements, (
        f"{name}: no record has customMeasurements {sorted(query.measurements - names.measurements)}"
    )
    for lhs, literals in query.compared.items():
        for literal in literals:
            if literal.endswith("*"):  # startswith: some constant of the code begins so (jwt_<check>)
                assert any(s.startswith(literal[:-1]) for s in names.strings), f"{name}: {lhs} {literal}"
            else:
                assert literal in names.strings, f"{name}: the product never writes {lhs} == {literal!r}"


def test_the_checks_catch_a_typo() -> None:
    names = written()
    query = kql.parse('customEvents | where name == "CallEnd" | extend w = tostring(customDimensions.whyy)')
    assert query.names - names.events == {"CallEnd"}
    assert query.dimensions - names.dimensions == {"whyy"}
    assert kql.parse("AppEvents | take 1").tables - TABLES == {"AppEvents"}
    union = kql.parse(
        "let x = customEvents | take 1;\nunion x, trace\n| where operation_Id in (y | project a)"
    )
    assert union.tables == {"customEvents", "trace", "y"}


# --- the workbook ---------------------------------------------------------------------------------


def test_workbook_is_a_workbook_on_application_insights() -> None:
    book = workbook()
    assert book["version"] == "Notebook/1.0"
    names = [item["name"] for item in book["items"]]
    assert len(names) == len(set(names)), "item names must be unique"
    (parameters,) = [item for item in book["items"] if item["type"] == 9]
    given = {p["name"]: p for p in parameters["content"]["parameters"]}
    assert given["TimeRange"]["type"] == 4
    assert given["CorrelationId"]["type"] == 1
    ids = [p["id"] for p in given.values()]
    assert len(ids) == len(set(ids))
    for item in book["items"]:
        if item["type"] == 3:
            content = item["content"]
            assert content["version"] == "KqlItem/1.0", item["name"]
            assert content["queryType"] == 0, item["name"]  # Logs (Analytics)
            assert content["resourceType"] == COMPONENTS, item["name"]
            assert content["timeContextFromParameter"] == "TimeRange", item["name"]
    # Opened outside the App Insights resource, it still knows where to look (replaced in Bicep).
    assert book["fallbackResourceIds"] == ["__APP_INSIGHTS_ID__"]
    assert len(WORKBOOK.read_text(encoding="utf-8")) < LOAD_TEXT_LIMIT


def test_workbook_covers_what_an_operator_asks() -> None:
    queries = {name: kql.parse(text) for name, text in workbook_queries().items()}
    names = set().union(*(q.names for q in queries.values()))
    assert {
        "CallEnded",
        "TransferRequested",
        "TransferAccepted",
        "TransferFailed",
        "MediaRefused",
        "CallbackRefused",
        "TwilioWebhookRefused",
        "MediaStreamingFailed",
        "IncomingCallFailed",
        "AssistantPrompted",
        "KeypadEntry",
        "ModelSessionRolledOver",
        "turn_latency_ms",
        "first_assistant_audio_ms",
        "active_calls",
        "model_reconnects",
        "outbound_underruns",
        "telemetry_dropped",
    } <= names
    assert {"why", "who", "reason", "records"} <= set().union(*(q.dimensions for q in queries.values()))
    assert set().union(*(q.tables for q in queries.values())) == TABLES
    # How calls ended, per hour; p50 and p95 of the latencies.
    assert "bin(timestamp, 1h), why" in workbook_queries()["calls-per-hour"]
    for name in ("turn-latency", "first-audio"):
        assert "percentile(value, 50)" in workbook_queries()[name]
        assert "percentile(value, 95)" in workbook_queries()[name]


def test_one_calls_timeline_is_every_record_of_its_correlation_id() -> None:
    book = workbook()
    (timeline,) = [item for item in book["items"] if item["name"] == "call-timeline"]
    query = kql.parse(timeline["content"]["query"])
    assert query.tables == TABLES
    assert 'where operation_Id == "{CorrelationId}"' in timeline["content"]["query"]
    assert timeline["conditionalVisibility"] == {
        "parameterName": "CorrelationId",
        "comparison": "isNotEqualTo",
        "value": "",
    }
    # Picking a call in the list fills the parameter.
    (recent,) = [item for item in book["items"] if item["name"] == "recent-calls"]
    assert recent["content"]["exportParameterName"] == "CorrelationId"
    assert recent["content"]["exportFieldName"] == "operation_Id"


def test_workbook_is_deployed_linked_to_application_insights() -> None:
    tree = module("operations")
    (book,) = [r for r in tree["resources"].values() if r["type"] == "Microsoft.Insights/workbooks"]
    config = body(book)
    assert config["kind"] == "shared"
    # A GUID, the same on every provision.
    assert render(config["name"]) == "guid(appInsights.id, calls-workbook)"
    properties = config["properties"]
    assert properties["category"] == "workbook"
    assert render(properties["sourceId"]) == "appInsights.id"
    assert render(properties["serializedData"]) == (
        "replace(load_text_content(../workbook/calls.workbook.json), __APP_INSIGHTS_ID__, appInsights.id)"
    )
    assert (INFRA / "modules" / "../workbook/calls.workbook.json").resolve() == WORKBOOK
    (component,) = [r for r in tree["resources"].values() if r["type"] == "Microsoft.Insights/components"]
    assert component["existing"] and render(body(component)["name"]) == "appInsightsName"
    assert operations_call()["appInsightsName"] == "monitoring.outputs.appInsightsName"
    assert main()["outputs"]["OPERATIONS_WORKBOOK_ID"]


# --- the alerts -----------------------------------------------------------------------------------


def test_alerts_watch_what_the_issue_lists() -> None:
    by_name = {alert["name"]: kql.parse(alert["query"]) for alert in alerts()}
    watched = set().union(*(q.names for q in by_name.values()))
    assert {
        "CallEnded",
        "MediaStreamingFailed",
        "IncomingCallFailed",
        "MediaRefused",
        "CallbackRefused",
        "turn_latency_ms",
        "model_reconnects",
        "outbound_underruns",
        "active_calls",
    } <= watched
    # Rejected JWTs: MediaRefused with a jwt_ reason (media_host/acs_door.py), and CallbackRefused.
    assert by_name["rejected-jwts"].compared["reason"] == {"jwt_*"}
    assert 'f"jwt_{' in (ROOT / "media_host" / "acs_door.py").read_text(encoding="utf-8")


def test_abnormal_ends_are_every_reason_but_the_ordinary_ones() -> None:
    (ended,) = [alert for alert in alerts() if alert["name"] == "call-ended-abnormally"]
    normal = kql.parse(ended["query"]).compared["why"]
    assert normal <= set(ENDED_BY), "an ordinary end the call core does not know"
    # The failures the issue names raise it, and each is a reason the code gives.
    strings = written().strings
    for failure in ("internal_error", "model_unavailable", "model_unstable", "media_idle", "transport_error"):
        assert failure in strings, failure
        assert failure not in normal and not any(n.endswith("_transport_error") for n in normal)
    assert "why !in (" in ended["query"], "anything not known to be ordinary must alert"
    assert [d["name"] for d in ended["dimensions"]] == ["why"]  # one alert per reason


def test_assistant_prompted_whys_are_the_call_cores() -> None:
    whys = set(typing.get_args(typing.get_type_hints(AssistantPrompted)["why"]))
    used = set().union(
        *(kql.parse(q).compared.get("tostring(customDimensions.why)", set()) for q in all_queries().values())
    )
    assert used and used <= whys | set(ENDED_BY)


def test_every_alert_rule_is_a_log_alert_on_application_insights() -> None:
    tree = module("operations")
    (rules,) = [
        r for r in tree["resources"].values() if r["type"] == "Microsoft.Insights/scheduledQueryRules"
    ]
    config = rules["config"]
    assert config["loop_type"]["detail"] == {"item_name": "alert", "array_name": "alerts"}
    assert config["condition"] is None, "the rules exist with or without an email"
    rule = config["config"]
    assert rule["kind"] == "LogAlert"
    properties = rule["properties"]
    assert render(properties["scopes"]) == "[appInsights.id]"
    # Classic Application Insights tables are refused at a 1-minute frequency (QueryNotContainKnownTable).
    assert properties["evaluationFrequency"] == "PT5M"
    assert properties["windowSize"] == "PT15M"
    assert properties["autoMitigate"] is True
    assert properties["enabled"] is True
    (criterion,) = properties["criteria"]["allOf"]
    assert render(criterion["query"]) == "alert.query"
    assert render(criterion["threshold"]) == "alert.threshold"
    assert render(properties["actions"]) == "{actionGroups: actionGroupIds}"
    names = [alert["name"] for alert in alerts()]
    assert len(names) == len(set(names))
    for alert in alerts():
        assert alert["severity"] in range(5), alert["name"]
        assert alert["operator"] in ("GreaterThan", "GreaterThanOrEqual"), alert["name"]
        assert alert["aggregation"] in ("Count", "Total", "Maximum"), alert["name"]
        if alert["aggregation"] == "Count":
            assert "measure" not in alert, alert["name"]
        else:  # the measured column is one the query returns
            made = re.findall(r"^\| (?:project|summarize) (.*)$", alert["query"], re.M)[-1]
            assert re.search(rf"(^|, ){alert['measure']}\b", made), alert["name"]
        for dimension in alert.get("dimensions", []):
            assert re.search(rf"\b{dimension['name']}\b", alert["query"]), alert["name"]


def test_thresholds_are_parameters() -> None:
    by_name = {alert["name"]: alert for alert in alerts()}
    assert render(by_name["turn-latency-p95"]["threshold"]) == "alertTurnLatencyP95Ms"
    assert "percentile(value, 95)" in by_name["turn-latency-p95"]["query"]
    assert render(by_name["rejected-jwts"]["threshold"]) == "alertRejectedJwts"
    assert render(by_name["model-reconnects"]["threshold"]) == "alertModelReconnects"
    assert render(by_name["outbound-underruns"]["threshold"]) == "alertUnderruns"
    # Near capacity: a share of MAX_CONCURRENT_CALLS, the very parameter the media workers get.
    assert render(by_name["active-calls-near-capacity"]["threshold"]) == "activeCallsThreshold"
    threshold = render(module("operations")["variables"]["activeCallsThreshold"]["value"])
    assert threshold == "max(1, maxConcurrentCalls * alertActiveCallsPercent / 100)"
    call = operations_call()
    assert call["maxConcurrentCalls"] == "maxConcurrentCalls"
    assert render(body(main()["modules"]["mediaApp"])["params"]["maxConcurrentCalls"]) == "maxConcurrentCalls"
    for name in ("alertTurnLatencyP95Ms", "alertActiveCallsPercent", "alertRejectedJwts", "alertModelReconnects",
                 "alertUnderruns", "alertEmail"):  # fmt: skip
        assert call[name] == name
        main_default = main()["parameters"][name]["default"]
        assert module("operations")["parameters"][name]["default"] == main_default, name
    assert "active_calls" in by_name["active-calls-near-capacity"]["query"]
    assert [d["name"] for d in by_name["active-calls-near-capacity"]["dimensions"]] == ["cloud_RoleInstance"]


def evaluate(node: Any, scope: dict[str, Any]) -> Any:
    """The few Bicep expressions the action group's wiring uses, evaluated (pycep gives identifiers and
    string literals alike as strings: a name in `scope` is a variable, anything else a literal)."""
    if node is None or isinstance(node, bool | int | float):
        return node
    if isinstance(node, str):
        return scope.get(node, node)
    if isinstance(node, list):
        return [evaluate(item, scope) for item in node]
    if "function" in node:
        kind = node["function"]["type"]
        arguments = [a for a in (node["function"].get("parameters") or {}).values() if a is not None]
        if kind == "filter":
            lambda_ = arguments[1]["detail"]
            return [
                item
                for item in evaluate(arguments[0], scope)
                if evaluate(lambda_["expression"], {**scope, lambda_["var_1"]: item})
            ]
        functions: dict[str, Callable[..., Any]] = {
            "split": str.split,
            "trim": str.strip,
            "empty": lambda value: len(value) == 0,
        }
        return functions[kind](*(evaluate(a, scope) for a in arguments))
    operator = node["operator"]
    operands = operator["operands"]
    if operator["type"] == "conditional":
        chosen = operands["true_value"] if evaluate(operands["condition"], scope) else operands["false_value"]
        return evaluate(chosen, scope)
    if operator["type"] == "not":
        return not evaluate(operands["bool_value"], scope)
    if operator["type"] == "property_accessor":  # a resource's id, kept symbolic
        return render(node)
    raise AssertionError(f"cannot evaluate {render(node)}")


@pytest.mark.parametrize(
    ("given", "receivers"),
    [
        ("", []),
        (" ", []),
        (", ,", []),
        ("ops@example.com", ["ops@example.com"]),
        ("ops@example.com, oncall@example.com,", ["ops@example.com", "oncall@example.com"]),
    ],
)
def test_action_group_exists_only_with_an_email(given: str, receivers: list[str]) -> None:
    tree = module("operations")
    variables = {name: v["value"] for name, v in tree["variables"].items()}
    scope: dict[str, Any] = {"alertEmail": given}
    scope["alertEmails"] = evaluate(variables["alertEmails"], scope)
    (group,) = [r for r in tree["resources"].values() if r["type"] == "Microsoft.Insights/actionGroups"]
    exists = evaluate(group["config"]["condition"], scope)
    assert exists is bool(receivers)
    loop = body(group)["properties"]["emailReceivers"]
    address = loop["loop_type"]["detail"]["item_name"]
    assert loop["loop_type"]["detail"]["array_name"] == "alertEmails"
    made = [
        evaluate(loop["config"]["emailAddress"], {**scope, address: item}) for item in scope["alertEmails"]
    ]
    assert made == receivers
    # The rules name the group only when it exists: no email, no receiver, no dangling id.
    assert evaluate(variables["actionGroupIds"], scope) == (["actionGroup.id"] if receivers else [])


def test_action_group_is_email_only_and_off_by_default() -> None:
    tree = module("operations")
    (group,) = [r for r in tree["resources"].values() if r["type"] == "Microsoft.Insights/actionGroups"]
    config = body(group)
    assert config["location"] == "global"
    assert len(config["properties"]["groupShortName"]) <= 12
    assert set(config["properties"]) == {"groupShortName", "enabled", "emailReceivers"}
    assert config["properties"]["emailReceivers"]["config"]["useCommonAlertSchema"] is True
    assert tree["parameters"]["alertEmail"]["default"] == ""
    assert main()["parameters"]["alertEmail"]["default"] == ""
    assert parameter_values()["alertEmail"] == "${ALERT_EMAIL}"


# --- parameters and regions -----------------------------------------------------------------------


def test_openai_region_is_one_with_a_realtime_model_and_azd_checks_quota() -> None:
    given = decorators("openAiLocation")
    assert set(given["allowed"]) == REALTIME_REGIONS
    azd = given["metadata"]["azd"]
    assert azd["type"] == "location"
    model = main()["parameters"]["realtimeModelName"]["default"]
    capacity = main()["parameters"]["realtimeCapacity"]["default"]
    assert azd["usageName"] == [f"OpenAI.GlobalStandard.{model},{capacity}"], (
        "quota for the default deployment"
    )
    # No default in main.parameters.json: azd asks (offering regions with quota) unless the env sets it.
    assert parameter_values()["openAiLocation"] == "${AZURE_OPENAI_LOCATION}"
    assert render(main()["outputs"]["AZURE_OPENAI_LOCATION"]["value"]) == "openAiLocation"  # kept for CI


def test_location_is_a_flex_consumption_region() -> None:
    given = decorators("location")
    regions = given["allowed"]
    assert len(regions) == len(set(regions)) >= 20
    assert all(re.fullmatch(r"[a-z]+[0-9]?", r) for r in regions), "ARM region names"
    assert not [r for r in regions if "euap" in r], "no canary regions"
    assert {"eastus2", "swedencentral", "westeurope", "japaneast"} <= set(regions)
    assert given["metadata"] == {"azd": {"type": "location"}}
    source = (INFRA / "main.bicep").read_text(encoding="utf-8")
    assert "az functionapp list-flexconsumption-locations" in source  # where the live list is
    assert "standard-global.md" in source  # where the realtime regions come from


def test_realtime_model_is_an_azd_parameter() -> None:
    values = parameter_values()
    for name, variable in (
        ("realtimeModelName", "AZURE_OPENAI_REALTIME_MODEL"),
        ("realtimeModelVersion", "AZURE_OPENAI_REALTIME_MODEL_VERSION"),
        ("realtimeCapacity", "AZURE_OPENAI_REALTIME_CAPACITY"),
    ):
        default = main()["parameters"][name]["default"]
        assert values[name] == f"${{{variable}={default}}}", name


def test_log_retention_is_a_parameter_with_an_audit_default() -> None:
    given = decorators("logAnalyticsRetentionDays")
    assert main()["parameters"]["logAnalyticsRetentionDays"]["default"] == 90
    assert (given["min_value"], given["max_value"]) == (30, 730)
    assert parameter_values()["logAnalyticsRetentionDays"] == "${LOG_ANALYTICS_RETENTION_DAYS=90}"
    monitoring = {k: render(v) for k, v in body(main()["modules"]["monitoring"])["params"].items()}
    assert monitoring["retentionInDays"] == "logAnalyticsRetentionDays"
    declared = module("monitoring")["parameters"]["retentionInDays"]
    assert declared["default"] is None, "no second default that could silently win"
    (workspace,) = [
        r
        for r in module("monitoring")["resources"].values()
        if r["type"] == "Microsoft.OperationalInsights/workspaces"
    ]
    assert render(body(workspace)["properties"]["retentionInDays"]) == "retentionInDays"


AZD_SETS = {"AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_PRINCIPAL_ID", "AZURE_PRINCIPAL_TYPE"}


def test_ci_gets_every_setting_azd_does_not_set_itself() -> None:
    config = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    listed = config["pipeline"]["variables"]
    assert len(listed) == len(set(listed))
    mapped = set()
    for value in parameter_values().values():
        match = re.fullmatch(r"\$\{([A-Z0-9_]+)(=.*)?\}", value)
        assert match, value
        mapped.add(match.group(1))
    needed = {v for v in mapped - AZD_SETS if not re.fullmatch(r"SERVICE_[A-Z0-9_]+_RESOURCE_EXISTS", v)}
    assert set(listed) == needed, (
        f"missing in pipeline.variables: {sorted(needed - set(listed))}; not a parameter: {sorted(set(listed) - needed)}"
    )
    assert "secrets" not in config["pipeline"], "no secret exists: every hop is Entra ID"


def test_azure_yaml_points_to_pages_that_exist() -> None:
    text = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    for page in re.findall(r"\b((?:docs|infra)/[\w./-]+\.md)\b", text):
        assert (ROOT / page).is_file(), page
    assert "docs/operations.md" in text


def test_operations_page_names_every_parameter_and_alert() -> None:
    page = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    for variable in yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))["pipeline"][
        "variables"
    ]:
        if variable.startswith(("ALERT_", "LOG_ANALYTICS", "AZURE_OPENAI")):
            assert f"`{variable}`" in page, variable
    for alert in alerts():
        assert f"`{alert['name']}`" in page, alert["name"]
    assert f"| {len(alerts())} log search alert rules" in page
    assert "postprovision" in page and ".env" in page


def test_links_into_the_operations_page_resolve() -> None:
    # Other pages link to its sections: renaming a heading must not break them.
    page = re.sub(
        r"^```.*?^```", "", (ROOT / "docs" / "operations.md").read_text(encoding="utf-8"), flags=re.M | re.S
    )
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", page, re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    linked = {
        (path.name, anchor)
        for path in pages
        for anchor in re.findall(r"operations\.md#([\w-]+)", path.read_text(encoding="utf-8"))
    }
    assert {(name, anchor) for name, anchor in linked if anchor not in anchors} == set()


def test_bicep_source_keeps_the_region_lists_in_one_place() -> None:
    # The two lists live in main.bicep only, so docs and tests read them from there.
    for path in (INFRA / "modules").glob("*.bicep"):
        assert "swedencentral" not in path.read_text(encoding="utf-8"), path.name
    assert Path(INFRA / "main.bicep").read_text(encoding="utf-8").count("'francecentral'") == 2
