// Azure Communication Services and its Event Grid system topic. The IncomingCall subscription on
// the topic is created by infra/hooks/postdeploy.*: Event Grid validates a webhook when the
// subscription is created, so the function must be deployed and answering first.

param tags object
param acsName string
param systemTopicName string

@description('Where ACS keeps data at rest.')
@allowed([
  'Africa'
  'Asia Pacific'
  'Australia'
  'Brazil'
  'Canada'
  'Europe'
  'France'
  'Germany'
  'India'
  'Japan'
  'Korea'
  'Norway'
  'Switzerland'
  'UAE'
  'UK'
  'United States'
])
param dataLocation string = 'United States'

resource acs 'Microsoft.Communication/communicationServices@2025-09-01' = {
  name: acsName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    // Entra ID only: both apps call with their managed identities (ACS_ENDPOINT, Contributor here);
    // nothing deployed reads a key, so an access key that leaks opens nothing.
    disableLocalAuth: true
  }
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: systemTopicName
  location: 'global'
  tags: tags
  properties: {
    source: acs.id
    topicType: 'Microsoft.Communication.CommunicationServices'
  }
}

output acsName string = acs.name
output acsId string = acs.id
output acsEndpoint string = 'https://${acs.properties.hostName}'
// The audience of ACS's JWTs, and the prefix of the resource's ACS user ids (not the ARM path).
output acsImmutableResourceId string = acs.properties.immutableResourceId
output systemTopicName string = systemTopic.name
