// The media host's platform: a Container Apps environment (Consumption workload profile) whose logs
// go to Log Analytics through a diagnostic setting (no workspace shared key anywhere), and the
// registry azd pushes the image to (remote build), pulled with the media identity (AcrPull).

param location string
param tags object
param environmentName string
param registryName string
param workspaceId string

resource managedEnvironment 'Microsoft.App/managedEnvironments@2025-07-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'azure-monitor'
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
    zoneRedundant: false
  }
}

resource environmentLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: managedEnvironment
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'ContainerAppConsoleLogs'
        enabled: true
      }
      {
        category: 'ContainerAppSystemLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: registryName
  location: location
  tags: tags
  // checkov:skip=CKV_AZURE_163: image vulnerability scanning is Defender for Containers, a subscription-level plan, not a registry property
  sku: {
    name: 'Basic'
  }
  // checkov:skip=CKV_AZURE_166: quarantine needs the Premium SKU and an external scanner
  // checkov:skip=CKV_AZURE_233: zone redundancy needs the Premium SKU; the registry is only read when a replica starts
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    // checkov:skip=CKV_AZURE_139: azd pushes with an ACR remote build and Container Apps pulls over the public endpoint (no VNet); admin user and anonymous pull are off, so every pull and push needs Entra ID
    publicNetworkAccess: 'Enabled'
  }
}

output environmentId string = managedEnvironment.id
output environmentName string = managedEnvironment.name
output defaultDomain string = managedEnvironment.properties.defaultDomain
output registryName string = registry.name
output registryLoginServer string = registry.properties.loginServer
