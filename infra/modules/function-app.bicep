// The control plane: a Python 3.11 Function App on Flex Consumption (FC1), running as its
// user-assigned identity for everything: deployment package, AzureWebJobsStorage, ACS and telemetry.

param location string
param tags object
param planName string
param functionAppName string
param identityId string
param identityClientId string
param storageName string
param storageBlobEndpoint string
param deploymentContainerName string
param appInsightsConnectionString string
param acsEndpoint string
param acsImmutableResourceId string

@description('wss://<media host>: ACS dials <it>/ws/media for every call.')
param mediaHostUrl string

@allowed([
  'pcm24KMono'
  'pcm16KMono'
])
param mediaAudioFormat string = 'pcm24KMono'
param inboundProfile string = ''
param phoneNumber string = ''
param inboundNumbers string = ''
param callerAllowList string = ''
param callerDenyList string = ''

@description('Numbers or +prefix* that POST /api/calls may call; empty: no phone number (ACS users only).')
param outboundAllowList string = ''
param auditUnmaskedNumbers bool = false
param auditTranscripts bool = false

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

resource plan 'Microsoft.Web/serverfarms@2025-03-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  // checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy depends on the region and bills always-ready instances; the webhooks are retried by Event Grid
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2025-03-01' = {
  name: functionAppName
  location: location
  tags: union(tags, { 'azd-service-name': 'functions' })
  kind: 'functionapp,linux'
  // checkov:skip=CKV_AZURE_17: the callers (Event Grid, ACS) cannot present client certificates; each route authenticates itself instead
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales per request from zero fixed instances; always-ready instances would bill at idle
  // checkov:skip=CKV_AZURE_213: Flex Consumption has no fixed instances for a health check to evict; the postdeploy hook polls /api/health
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // checkov:skip=CKV_AZURE_222: Event Grid and ACS call these webhooks from the internet; each route authenticates itself (function key on /api/incoming-call and /api/calls, ACS JWT on /api/callbacks)
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Every setting the control plane reads (functions/settings.py SETTING_NAMES), except the
// local-development ones listed in tests/infra. A separate resource so CALLBACK_URI_HOST can name
// the app's own host name, which is only known once the site exists. Nothing here is a secret.
resource appSettings 'Microsoft.Web/sites/config@2025-03-01' = {
  parent: functionApp
  name: 'appsettings'
  // checkov reads this resource as the site's 'web' config; these checks are about settings that live
  // on the site (above), not in app settings:
  // checkov:skip=CKV_AZURE_13: false positive (app settings resource); each route authenticates itself: function key or ACS JWT
  // checkov:skip=CKV_AZURE_222: false positive (app settings resource); the site is public on purpose, see above
  properties: {
    // checkov:skip=CKV_AZURE_63: false positive (app settings resource); the host logs requests to Application Insights
    // checkov:skip=CKV_AZURE_65: false positive (app settings resource); errors are logged, never shown to callers
    // checkov:skip=CKV_AZURE_66: false positive (app settings resource); failed requests are in Application Insights
    // checkov:skip=CKV_AZURE_80: false positive (app settings resource); a Python app, no .NET Framework
    AzureWebJobsStorage__credential: 'managedidentity'
    // checkov:skip=CKV_AZURE_88: false positive (app settings resource); Flex Consumption has no Azure Files content share
    AzureWebJobsStorage__clientId: identityClientId
    AzureWebJobsStorage__blobServiceUri: 'https://${storageName}.blob.${environment().suffixes.storage}'
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identityClientId}'
    AZURE_CLIENT_ID: identityClientId
    ACS_ENDPOINT: acsEndpoint
    ACS_RESOURCE_ID: acsImmutableResourceId
    CALLBACK_URI_HOST: 'https://${functionApp.properties.defaultHostName}'
    MEDIA_HOST_URL: mediaHostUrl
    MEDIA_AUDIO_FORMAT: mediaAudioFormat
    AOAI_PROFILES_DIR: 'prompts'
    AOAI_INBOUND_PROFILE: inboundProfile
    ACS_PHONE_NUMBER: phoneNumber
    ACS_INBOUND_NUMBERS: inboundNumbers
    CALLER_ALLOW_LIST: callerAllowList
    CALLER_DENY_LIST: callerDenyList
    OUTBOUND_ALLOW_LIST: outboundAllowList
    AUDIT_UNMASKED_NUMBERS: auditUnmaskedNumbers ? 'true' : 'false'
    AUDIT_TRANSCRIPTS: auditTranscripts ? 'true' : 'false'
  }
}

output functionAppName string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output baseUrl string = 'https://${functionApp.properties.defaultHostName}'
