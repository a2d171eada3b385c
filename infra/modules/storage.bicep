// The function app's storage: its Flex Consumption deployment package container and the host's own
// state (AzureWebJobsStorage: locks, function keys). Identity-based only: shared keys are disabled,
// the function identity has Storage Blob Data Owner (roles.bicep).

param location string
param tags object
param storageName string
param deploymentContainerName string

resource storage 'Microsoft.Storage/storageAccounts@2024-01-01' = {
  // checkov:skip=CKV_AZURE_43: the name is a parameter checkov cannot resolve: 'st' + uniqueString() in main.bicep, 15 lowercase letters and digits
  name: storageName
  location: location
  tags: tags
  kind: 'StorageV2'
  // checkov:skip=CKV_AZURE_206: holds only rebuildable state (the deployment zip, host locks and keys): LRS is enough, azd redeploys the package
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // checkov:skip=CKV_AZURE_59: Flex Consumption without VNet integration reaches its storage over the public endpoint; shared keys are disabled, so only Entra-authorised identities get in
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      // checkov:skip=CKV_AZURE_35: a deny rule would lock out the Flex Consumption host, which has no VNet here and is not a trusted service; shared keys are off instead
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2024-01-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

output storageName string = storage.name
output storageId string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output deploymentContainerName string = deploymentContainer.name
