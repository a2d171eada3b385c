// What an operator watches (docs/operations.md): the calls workbook, linked to Application Insights,
// and log search alert rules on the same records (customEvents, customMetrics), with an email action
// group when an address is given. Every threshold is a parameter of main.bicep (an azd env variable).
// The queries name only events and metrics the product writes: tests/infra derives those names from
// the code and checks every query here and in infra/workbook/calls.workbook.json against them.

param location string
param tags object
param environmentName string
param appInsightsName string

@description('Display name of the workbook, unique in the resource group.')
param workbookDisplayName string

@description('Who gets the alerts: one address, or several separated by commas. Empty: no action group (alerts still show in the portal).')
param alertEmail string = ''

@description('MAX_CONCURRENT_CALLS of the media workers: the active-calls alert fires at alertActiveCallsPercent of it.')
@minValue(1)
param maxConcurrentCalls int

@minValue(1)
@maxValue(100)
param alertActiveCallsPercent int = 80

@minValue(1)
param alertTurnLatencyP95Ms int = 2000

@minValue(0)
param alertRejectedJwts int = 10

@minValue(0)
param alertModelReconnects int = 3

@minValue(0)
param alertUnderruns int = 50

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// --- the workbook --------------------------------------------------------------------------------

// A workbook's name must be a GUID: the same one on every provision, so a provision updates it.
resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(appInsights.id, 'calls-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: workbookDisplayName
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: replace(loadTextContent('../workbook/calls.workbook.json'), '__APP_INSIGHTS_ID__', appInsights.id)
  }
}

// --- who is told -----------------------------------------------------------------------------------

var alertEmails = filter(split(alertEmail, ','), address => !empty(trim(address)))

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmails)) {
  name: 'ag-voice-${environmentName}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'voicecalls'
    enabled: true
    emailReceivers: [for (address, i) in alertEmails: {
      name: 'operator-${i}'
      emailAddress: trim(address)
      useCommonAlertSchema: true
    }]
  }
}

var actionGroupIds = empty(alertEmails) ? [] : [actionGroup.id]

// --- the alert rules -------------------------------------------------------------------------------

var activeCallsThreshold = max(1, maxConcurrentCalls * alertActiveCallsPercent / 100)

// Each rule: a query over the last 15 minutes, evaluated every 5 (classic tables at 1 minute were seen
// refused, QueryNotContainKnownTable: docs/operations.md), and a condition on its rows: their count,
// or the Total or Maximum of a measure column (no percentile aggregation: the query computes the p95).
// The first rule lists the ways a call may end without anyone at fault (ENDED_BY in
// media_host/call_events.py): any other `why` (internal_error, model_unavailable, model_unstable,
// model_session_rejected, media_idle, acs_transport_error, media_streaming_failed, drain_timeout,
// shutdown, ...) raises it.
var alerts = [
  {
    name: 'call-ended-abnormally'
    title: 'Calls ended by a failure'
    description: 'A call ended for a reason that is not the caller, the assistant or a limit (the why dimension). Open the workbook, pick the call, read its timeline.'
    severity: 1
    query: '''
customEvents
| where name == "CallEnded"
| extend why = tostring(customDimensions.why)
| where why !in ("assistant_ended", "transferred", "acs_closed", "max_call_seconds", "no_input")
| project timestamp, operation_Id, why
'''
    aggregation: 'Count'
    dimensions: [
      {
        name: 'why'
        operator: 'Include'
        values: [
          '*'
        ]
      }
    ]
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'media-streaming-failed'
    title: 'ACS could not stream a call\'s audio'
    description: 'MediaStreamingFailed: ACS did not reach the media host or lost it; the explanation dimension says why (e.g. 8581: MEDIA_HOST_URL unreachable).'
    severity: 1
    query: '''
customEvents
| where name == "MediaStreamingFailed"
| project timestamp, operation_Id, sub_code = tostring(customDimensions.sub_code)
'''
    aggregation: 'Count'
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'incoming-call-failed'
    title: 'Incoming calls not answered'
    description: 'IncomingCallFailed: ACS refused answer_call or could not be reached; callers heard ringing and nothing else.'
    severity: 1
    query: '''
customEvents
| where name == "IncomingCallFailed"
| project timestamp, operation_Id, error = tostring(customDimensions.error)
'''
    aggregation: 'Count'
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'rejected-jwts'
    title: 'Requests with a rejected ACS token'
    description: 'MediaRefused with a jwt_ reason, and CallbackRefused: someone calls the doors without a valid ACS token, or ACS_RESOURCE_ID is wrong.'
    severity: 2
    query: '''
customEvents
| where name in ("MediaRefused", "CallbackRefused")
| extend reason = tostring(customDimensions.reason)
| where name == "CallbackRefused" or reason startswith "jwt_"
| project timestamp, name, reason
'''
    aggregation: 'Count'
    operator: 'GreaterThan'
    threshold: alertRejectedJwts
  }
  {
    name: 'turn-latency-p95'
    title: 'Callers wait too long for answers'
    description: 'p95 of turn_latency_ms (end of the caller\'s speech to the first answer audio) over the last 15 minutes, with at least 10 turns.'
    severity: 2
    query: '''
customMetrics
| where name == "turn_latency_ms"
| summarize p95 = percentile(value, 95), turns = count()
| where turns >= 10
'''
    aggregation: 'Maximum'
    measure: 'p95'
    operator: 'GreaterThan'
    threshold: alertTurnLatencyP95Ms
  }
  {
    name: 'model-reconnects'
    title: 'Model sessions reconnecting'
    description: 'model_reconnects: the model socket dropped mid-call and was restored; many of them precede model_unstable ends.'
    severity: 2
    query: '''
customMetrics
| where name == "model_reconnects"
| project timestamp, operation_Id
'''
    aggregation: 'Count'
    operator: 'GreaterThan'
    threshold: alertModelReconnects
  }
  {
    name: 'outbound-underruns'
    title: 'Gaps in the assistant\'s audio'
    description: 'outbound_underruns (per call, at its end): the caller\'s line ran dry while the model still had audio to come.'
    severity: 3
    query: '''
customMetrics
| where name == "outbound_underruns"
| project timestamp, value, operation_Id
'''
    aggregation: 'Total'
    measure: 'value'
    operator: 'GreaterThan'
    threshold: alertUnderruns
  }
  {
    name: 'active-calls-near-capacity'
    title: 'A media worker is near MAX_CONCURRENT_CALLS'
    description: 'active_calls of one worker (cloud_RoleInstance = host:pid) reached alertActiveCallsPercent of MAX_CONCURRENT_CALLS; over it, calls are refused (MediaRefused capacity).'
    severity: 2
    query: '''
customMetrics
| where name == "active_calls"
| project timestamp, value, cloud_RoleInstance
'''
    aggregation: 'Maximum'
    measure: 'value'
    dimensions: [
      {
        name: 'cloud_RoleInstance'
        operator: 'Include'
        values: [
          '*'
        ]
      }
    ]
    operator: 'GreaterThanOrEqual'
    threshold: activeCallsThreshold
  }
  {
    name: 'telemetry-dropped'
    title: 'Audit records lost'
    description: 'telemetry_dropped: a worker\'s exporter lost records (full queue or failed export); the audit trail of some calls is incomplete.'
    severity: 3
    query: '''
customMetrics
| where name == "telemetry_dropped"
| project timestamp, value, cloud_RoleInstance
'''
    aggregation: 'Total'
    measure: 'value'
    operator: 'GreaterThan'
    threshold: 0
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for alert in alerts: {
  name: 'alert-${alert.name}-${environmentName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${alert.title} (${environmentName})'
    description: alert.description
    severity: alert.severity
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: alert.query
          timeAggregation: alert.aggregation
          metricMeasureColumn: alert.?measure
          dimensions: alert.?dimensions ?? []
          operator: alert.operator
          threshold: alert.threshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroupIds
    }
  }
}]

output workbookId string = workbook.id
output workbookName string = workbook.properties.displayName
