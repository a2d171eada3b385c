// One user-assigned identity per plane. User-assigned (not system-assigned) so the role
// assignments exist before the apps that use them: the media app's first image pull needs AcrPull.

param location string
param tags object
param functionsIdentityName string
param mediaIdentityName string

resource functionsIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: functionsIdentityName
  location: location
  tags: tags
}

resource mediaIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: mediaIdentityName
  location: location
  tags: tags
}

output functionsIdentityId string = functionsIdentity.id
output functionsPrincipalId string = functionsIdentity.properties.principalId
output functionsClientId string = functionsIdentity.properties.clientId
output mediaIdentityId string = mediaIdentity.id
output mediaPrincipalId string = mediaIdentity.properties.principalId
output mediaClientId string = mediaIdentity.properties.clientId
