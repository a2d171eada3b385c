// The whole system for `azd up`: ACS (+ Event Grid system topic) -> Functions (Flex Consumption)
// -> Container Apps media host -> Azure OpenAI realtime model, with Application Insights, managed
// identities and role assignments. No keys: every hop authenticates with Entra ID. Written in the
// Bicep subset pycep-parser reads (reference/infra.md section 3); tests/infra asserts on it.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment: the resource group is rg-<it>, every resource is tagged with it.')
param environmentName string

// The regions that offer the Flex Consumption plan, as Azure-Samples/functions-quickstart-python-http-azd
// (infra/main.bicep @ 0bb0f106) lists them for azd, less the canary eastus2euap. The live list is
// `az functionapp list-flexconsumption-locations`; that each of these also offers Container Apps'
// Consumption workload profile and Python 3.11 on Flex is UNVERIFIED here (docs/operations.md).
@minLength(1)
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({ azd: { type: 'location' } })
@description('Region of everything but Azure OpenAI (ACS and its Event Grid topic are global): one with Flex Consumption.')
param location string

// The regions whose Global Standard deployments offer a realtime model (gpt-realtime 2025-08-28,
// gpt-realtime-1.5 2026-02-23, gpt-realtime-mini 2025-10-06/2025-12-15): the model matrix
// MicrosoftDocs/azure-ai-docs articles/foundry/openai/includes/model-matrix/standard-global.md
// @ 0be16753 has all of them in exactly these five. azd offers only those of them where the
// subscription has quota for usageName (model, capacity): keep it in step with the defaults below.
@minLength(1)
@allowed([
  'canadacentral'
  'centralus'
  'eastus2'
  'francecentral'
  'swedencentral'
])
@metadata({
  azd: {
    type: 'location'
    usageName: [
      'OpenAI.GlobalStandard.gpt-realtime,10'
    ]
  }
})
@description('Region of Azure OpenAI: azd asks for one with Global Standard quota for the realtime model (AZURE_OPENAI_LOCATION).')
param openAiLocation string

@description('Object id of the developer running azd (AZURE_PRINCIPAL_ID): gets data roles for local runs.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('azd sets SERVICE_MEDIA_RESOURCE_EXISTS once the media app runs an image; re-provisioning keeps it.')
param mediaExists bool = false

@description('Where ACS keeps data at rest.')
param acsDataLocation string = 'United States'

param realtimeDeploymentName string = 'gpt-realtime'

// gpt-realtime (and gpt-realtime-2025-08-28, gpt-realtime-mini) are announced for retirement on
// 2027-01-20: the model is the operator's choice (AZURE_OPENAI_REALTIME_MODEL, _VERSION, _CAPACITY),
// not a release of this code. Global Standard offers gpt-realtime 2025-08-28, gpt-realtime-1.5
// 2026-02-23 and gpt-realtime-mini 2025-10-06 / 2025-12-15 (model matrix cited above).
@description('Realtime model deployed under realtimeDeploymentName, as Azure lists it (gpt-realtime, gpt-realtime-1.5, gpt-realtime-mini).')
param realtimeModelName string = 'gpt-realtime'

@description('Version of realtimeModelName offered as GlobalStandard in openAiLocation.')
param realtimeModelVersion string = '2025-08-28'

@description('GlobalStandard capacity of the realtime deployment, in thousands of tokens per minute (quota-bound).')
@minValue(1)
param realtimeCapacity int = 10

// Operations (docs/operations.md): retention of the audit trail, and the alerts' thresholds.
@description('Days Log Analytics keeps every record (LOG_ANALYTICS_RETENTION_DAYS): 31 are included in the ingestion price, the rest is billed per GB and month.')
@minValue(30)
@maxValue(730)
param logAnalyticsRetentionDays int = 90

@description('Who gets the alerts (ALERT_EMAIL): one address or several separated by commas. Empty: no action group; alerts still show in the portal.')
param alertEmail string = ''

@description('ALERT_TURN_LATENCY_P95_MS: p95 of turn_latency_ms over 15 minutes above which callers wait too long.')
@minValue(1)
param alertTurnLatencyP95Ms int = 2000

@description('ALERT_ACTIVE_CALLS_PERCENT: alert when a media worker holds this share of MAX_CONCURRENT_CALLS.')
@minValue(1)
@maxValue(100)
param alertActiveCallsPercent int = 80

@description('ALERT_REJECTED_JWTS: rejected ACS tokens (media and callbacks) in 15 minutes above which to alert.')
@minValue(0)
param alertRejectedJwts int = 10

@description('ALERT_MODEL_RECONNECTS: model socket reconnects in 15 minutes above which to alert.')
@minValue(0)
param alertModelReconnects int = 3

@description('ALERT_UNDERRUNS: outbound underruns (all calls ended in 15 minutes) above which to alert.')
@minValue(0)
param alertUnderruns int = 50

// What a team changes (docs/deploy.md: "Settings a team changes"); each is also an azd env variable.
param voice string = 'sage'
param instructions string = ''
param instructionsFile string = ''
param transferTarget string = ''
@description('MAX_CONCURRENT_CALLS: calls per media worker process; a replica runs one worker per vCPU.')
param maxConcurrentCalls int = 50
param maxCallSeconds int = 1800

@description('MEDIA_DRAIN_SECONDS, and (plus a margin) the media replicas\' termination grace period.')
param mediaDrainSeconds int = 120
param mediaMaxReplicas int = 3
param mediaAudioFormat string = 'pcm24KMono'
param inboundProfile string = ''
param phoneNumber string = ''
param inboundNumbers string = ''
param callerAllowList string = ''
param callerDenyList string = ''

@description('OUTBOUND_ALLOW_LIST: the numbers or +prefix* POST /api/calls may call. Empty: no phone number (toll fraud).')
param outboundAllowList string = ''
param auditUnmaskedNumbers bool = false
param auditTranscripts bool = false

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var mediaAppName = 'ca-media-${resourceToken}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    workspaceName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    retentionInDays: logAnalyticsRetentionDays
  }
}

module operations 'modules/operations.bicep' = {
  name: 'operations'
  scope: rg
  params: {
    location: location
    tags: tags
    environmentName: environmentName
    appInsightsName: monitoring.outputs.appInsightsName
    workbookDisplayName: 'Voice calls (${environmentName})'
    alertEmail: alertEmail
    maxConcurrentCalls: maxConcurrentCalls
    alertActiveCallsPercent: alertActiveCallsPercent
    alertTurnLatencyP95Ms: alertTurnLatencyP95Ms
    alertRejectedJwts: alertRejectedJwts
    alertModelReconnects: alertModelReconnects
    alertUnderruns: alertUnderruns
  }
}

module identities 'modules/identities.bicep' = {
  name: 'identities'
  scope: rg
  params: {
    location: location
    tags: tags
    functionsIdentityName: 'id-func-${resourceToken}'
    mediaIdentityName: 'id-media-${resourceToken}'
  }
}

module communication 'modules/communication.bicep' = {
  name: 'communication'
  scope: rg
  params: {
    tags: tags
    acsName: 'acs-${resourceToken}'
    systemTopicName: 'egst-acs-${resourceToken}'
    dataLocation: acsDataLocation
  }
}

module openAi 'modules/openai.bicep' = {
  name: 'openai'
  scope: rg
  params: {
    location: openAiLocation
    tags: tags
    accountName: 'oai-${resourceToken}'
    deploymentName: realtimeDeploymentName
    modelName: realtimeModelName
    modelVersion: realtimeModelVersion
    capacity: realtimeCapacity
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    storageName: 'st${resourceToken}'
    deploymentContainerName: 'deployment-package'
  }
}

module containerApps 'modules/container-apps.bicep' = {
  name: 'container-apps'
  scope: rg
  params: {
    location: location
    tags: tags
    environmentName: 'cae-${resourceToken}'
    registryName: 'cr${resourceToken}'
    workspaceId: monitoring.outputs.workspaceId
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    functionsPrincipalId: identities.outputs.functionsPrincipalId
    mediaPrincipalId: identities.outputs.mediaPrincipalId
    developerPrincipalId: principalId
    developerPrincipalType: principalType
    acsName: communication.outputs.acsName
    openAiName: openAi.outputs.accountName
    storageName: storage.outputs.storageName
    appInsightsName: monitoring.outputs.appInsightsName
    registryName: containerApps.outputs.registryName
  }
}

// The media host's address, from the environment's domain rather than from the app itself: the
// function app needs it, and the media app must not have to exist first (no cycle, one pass).
var mediaHostUrl = 'wss://${mediaAppName}.${containerApps.outputs.defaultDomain}'

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    location: location
    tags: tags
    planName: 'plan-${resourceToken}'
    functionAppName: 'func-${resourceToken}'
    identityId: identities.outputs.functionsIdentityId
    identityClientId: identities.outputs.functionsClientId
    storageName: storage.outputs.storageName
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    acsEndpoint: communication.outputs.acsEndpoint
    acsImmutableResourceId: communication.outputs.acsImmutableResourceId
    mediaHostUrl: mediaHostUrl
    mediaAudioFormat: mediaAudioFormat
    inboundProfile: inboundProfile
    phoneNumber: phoneNumber
    inboundNumbers: inboundNumbers
    callerAllowList: callerAllowList
    callerDenyList: callerDenyList
    outboundAllowList: outboundAllowList
    auditUnmaskedNumbers: auditUnmaskedNumbers
    auditTranscripts: auditTranscripts
  }
  dependsOn: [
    roles
  ]
}

module mediaApp 'modules/media-app.bicep' = {
  name: 'media-app'
  scope: rg
  params: {
    location: location
    tags: tags
    appName: mediaAppName
    environmentId: containerApps.outputs.environmentId
    identityId: identities.outputs.mediaIdentityId
    identityClientId: identities.outputs.mediaClientId
    registryLoginServer: containerApps.outputs.registryLoginServer
    exists: mediaExists
    acsEndpoint: communication.outputs.acsEndpoint
    acsImmutableResourceId: communication.outputs.acsImmutableResourceId
    openAiEndpoint: openAi.outputs.endpoint
    openAiDeployment: openAi.outputs.deploymentName
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    voice: voice
    instructions: instructions
    instructionsFile: instructionsFile
    transferTarget: transferTarget
    maxConcurrentCalls: maxConcurrentCalls
    maxCallSeconds: maxCallSeconds
    drainSeconds: mediaDrainSeconds
    maxReplicas: mediaMaxReplicas
    auditUnmaskedNumbers: auditUnmaskedNumbers
    auditTranscripts: auditTranscripts
  }
  // AcrPull (in roles) must exist before the first revision pulls its image.
  dependsOn: [
    roles
  ]
}

// Written to .azure/<env>/.env by azd and handed to the hooks. No secret among them: no keys exist.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = containerApps.outputs.registryLoginServer
output AZURE_CONTAINER_REGISTRY_NAME string = containerApps.outputs.registryName
output AZURE_CONTAINER_APPS_ENVIRONMENT_NAME string = containerApps.outputs.environmentName
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.functionAppName
output FUNCTION_BASE_URL string = functionApp.outputs.baseUrl
output FUNCTION_HEALTH_URL string = '${functionApp.outputs.baseUrl}/api/health'
output INCOMING_CALL_URL string = '${functionApp.outputs.baseUrl}/api/incoming-call'
output MEDIA_APP_NAME string = mediaApp.outputs.name
output MEDIA_HOST_URL string = mediaHostUrl
output MEDIA_HEALTH_URL string = 'https://${mediaApp.outputs.fqdn}/readyz'
output ACS_NAME string = communication.outputs.acsName
output ACS_ENDPOINT string = communication.outputs.acsEndpoint
output ACS_RESOURCE_ID string = communication.outputs.acsImmutableResourceId
output ACS_SYSTEM_TOPIC_NAME string = communication.outputs.systemTopicName
// The region azd asked for (or AZURE_OPENAI_LOCATION gave), kept in the azd env so later provisions
// and `azd pipeline config` reuse it.
output AZURE_OPENAI_LOCATION string = openAiLocation
output AZURE_OPENAI_ENDPOINT string = openAi.outputs.endpoint
output AZURE_OPENAI_DEPLOYMENT string = openAi.outputs.deploymentName
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.appInsightsConnectionString
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.workspaceName
output OPERATIONS_WORKBOOK_ID string = operations.outputs.workbookId
output OPERATIONS_WORKBOOK_NAME string = operations.outputs.workbookName
