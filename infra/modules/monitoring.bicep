// Log Analytics + workspace-based Application Insights. Local (key) auth is off on the component:
// both planes send telemetry with their managed identity (Monitoring Metrics Publisher, roles.bicep)
// and APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD;ClientId=<identity>.

param location string
param tags object
param workspaceName string
param appInsightsName string

// Every table's retention, the audit trail's included: main.bicep's logAnalyticsRetentionDays (90 by
// default). 31 days are included in the ingestion price; the rest is billed per GB and month.
@minValue(30)
@maxValue(730)
param retentionInDays int

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-07-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
    IngestionMode: 'LogAnalytics'
  }
}

output workspaceId string = workspace.id
output workspaceName string = workspace.name
output appInsightsName string = appInsights.name
// The connection string names the ingestion endpoint and the instrumentation key, an identifier:
// with DisableLocalAuth it admits nothing without an Entra token, so it is not a secret.
output appInsightsConnectionString string = appInsights.properties.ConnectionString
