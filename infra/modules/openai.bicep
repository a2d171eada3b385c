// Azure OpenAI with one realtime model deployment (model name and version are azd parameters). Keys
// are disabled: the media host connects with its managed identity (Cognitive Services OpenAI User,
// roles.bicep), which needs the custom subdomain.

param location string
param tags object
param accountName string
param deploymentName string
param modelName string
param modelVersion string

@minValue(1)
param capacity int

resource account 'Microsoft.CognitiveServices/accounts@2025-06-01' = {
  name: accountName
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: {
    name: 'S0'
  }
  properties: {
    customSubDomainName: accountName
    disableLocalAuth: true
    // checkov:skip=CKV_AZURE_134: ACS dials the media host, and the media host reaches the model from Container Apps' shared egress; without a VNet there is no private path, so access is Entra-only instead (keys disabled)
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
    }
  }
  // checkov:skip=CKV_AZURE_238: no managed identity of its own is needed: the account calls nothing (no customer-managed keys, no data sources); callers bring their identity
}

resource realtime 'Microsoft.CognitiveServices/accounts/deployments@2025-06-01' = {
  parent: account
  name: deploymentName
  sku: {
    name: 'GlobalStandard'
    capacity: capacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: modelName
      version: modelVersion
    }
    versionUpgradeOption: 'NoAutoUpgrade'
  }
}

output accountName string = account.name
output accountId string = account.id
output endpoint string = account.properties.endpoint
output deploymentName string = realtime.name
