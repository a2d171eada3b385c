// The media plane: `python -m media_host` on Container Apps, always on (minReplicas 1), one external
// HTTPS/WSS endpoint that ACS dials at /ws/media. Every setting the media host reads is set here
// (media_host/settings.py), except the local-development ones listed in tests/infra.

param location string
param tags object
param appName string
param environmentId string
param identityId string
param identityClientId string
param registryLoginServer string

@description('True once azd has deployed an image: re-provisioning keeps it instead of the placeholder.')
param exists bool

param acsEndpoint string
param acsImmutableResourceId string
param openAiEndpoint string
param openAiDeployment string
param appInsightsConnectionString string

@allowed([
  'alloy'
  'ash'
  'ballad'
  'coral'
  'echo'
  'sage'
  'shimmer'
  'verse'
  'marin'
  'cedar'
])
param voice string = 'sage'

@description('System prompt; empty: the media host\'s default. AOAI_INSTRUCTIONS_FILE wins when both are set.')
param instructions string = ''

@description('Path of a prompt file inside the image (e.g. prompts/restaurant.txt); empty: none.')
param instructionsFile string = ''

param transcriptionModel string = 'whisper-1'

@description('+E164 number or 8:acs:... user for the transfer_to_agent tool; empty: no transfer tool.')
param transferTarget string = ''

@description('MAX_CONCURRENT_CALLS: calls per worker process; a replica takes workers (one per whole vCPU) x this.')
@minValue(1)
@maxValue(10000)
param maxConcurrentCalls int = 50

@minValue(1)
@maxValue(86400)
param maxCallSeconds int = 1800

@description('How long SIGTERM waits for live calls; the termination grace period follows it (+15 s).')
@minValue(0)
@maxValue(3585)
param drainSeconds int = 120

@allowed([
  'QQ'
  'LQ'
  'MQ'
  'HQ'
  'VHQ'
])
param soxrQuality string = 'HQ'

@allowed([
  'DEBUG'
  'INFO'
  'WARNING'
  'ERROR'
])
param logLevel string = 'INFO'
param auditUnmaskedNumbers bool = false
param auditTranscripts bool = false

@minValue(1)
@maxValue(1000)
param maxReplicas int = 3

@description('Average CPU utilisation (% of the replica\'s vCPU) above which a replica is added.')
@minValue(10)
@maxValue(90)
param cpuScaleThreshold int = 25

@description('vCPU per replica, as a string (0.5, 0.75, 1.0, ...); memory is twice that in GiB. One media-host worker per whole vCPU.')
param cpu string = '1.0'
param memory string = '2Gi'

// The port the image listens on (media_host/Dockerfile: PORT=8000, EXPOSE 8000).
var port = 8000

// MEDIA_WORKERS: one process per whole vCPU (at least one), behind the one port. Set here because the
// host's default (the CPUs it may run on) counts the node's cores: a replica's vCPU is a quota.
var workers = max(1, int(split(cpu, '.')[0]))

var placeholderImage = 'mcr.microsoft.com/azuredocs/containerapps-helloworld:latest'

resource existingApp 'Microsoft.App/containerApps@2025-07-01' existing = if (exists) {
  name: appName
}

resource mediaApp 'Microsoft.App/containerApps@2025-07-01' = {
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': 'media' })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environmentId
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: port
        // auto: HTTP/1.1 upgrade carries the WebSocket; TLS ends at the ingress with a valid public
        // certificate, which ACS requires for wss://.
        transport: 'auto'
        allowInsecure: false
        traffic: [
          {
            latestRevision: true
            weight: 100
          }
        ]
      }
      registries: [
        {
          server: registryLoginServer
          identity: identityId
        }
      ]
    }
    template: {
      // SIGTERM turns /readyz to 503 in every worker and lets live calls run for MEDIA_DRAIN_SECONDS;
      // then each worker closes what is left (1001) and flushes telemetry. The workers' manager waits
      // MEDIA_DRAIN_SECONDS + 10 s for that (media_host/workers.py); the platform's SIGKILL comes after.
      terminationGracePeriodSeconds: drainSeconds + 15
      containers: [
        {
          name: 'media'
          image: exists ? existingApp.properties.template.containers[0].image : placeholderImage
          resources: {
            cpu: json(cpu)
            memory: memory
          }
          env: [
            {
              name: 'PORT'
              value: string(port)
            }
            {
              name: 'AZURE_CLIENT_ID'
              value: identityClientId
            }
            {
              name: 'ACS_RESOURCE_ID'
              value: acsImmutableResourceId
            }
            {
              name: 'ACS_ENDPOINT'
              value: acsEndpoint
            }
            {
              name: 'AZURE_OPENAI_ENDPOINT'
              value: openAiEndpoint
            }
            {
              name: 'AZURE_OPENAI_DEPLOYMENT'
              value: openAiDeployment
            }
            {
              name: 'AOAI_VOICE'
              value: voice
            }
            {
              name: 'AOAI_INSTRUCTIONS'
              value: instructions
            }
            {
              name: 'AOAI_INSTRUCTIONS_FILE'
              value: instructionsFile
            }
            {
              name: 'AOAI_PROFILES_DIR'
              value: 'prompts'
            }
            {
              name: 'AOAI_TRANSCRIPTION_MODEL'
              value: transcriptionModel
            }
            {
              name: 'TRANSFER_TARGET'
              value: transferTarget
            }
            {
              name: 'MEDIA_WORKERS'
              value: string(workers)
            }
            {
              name: 'MAX_CONCURRENT_CALLS'
              value: string(maxConcurrentCalls)
            }
            {
              name: 'MAX_CALL_SECONDS'
              value: string(maxCallSeconds)
            }
            {
              name: 'MEDIA_DRAIN_SECONDS'
              value: string(drainSeconds)
            }
            {
              name: 'MEDIA_WS_SOXR_QUALITY'
              value: soxrQuality
            }
            {
              name: 'LOG_LEVEL'
              value: logLevel
            }
            {
              name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
              value: appInsightsConnectionString
            }
            {
              name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
              value: 'Authorization=AAD;ClientId=${identityClientId}'
            }
            {
              name: 'AUDIT_UNMASKED_NUMBERS'
              value: auditUnmaskedNumbers ? 'true' : 'false'
            }
            {
              name: 'AUDIT_TRANSCRIPTS'
              value: auditTranscripts ? 'true' : 'false'
            }
          ]
          // The placeholder image of the first provision listens on 80, so its revision fails these
          // until `azd deploy` (the next step of `azd up`) puts the media host in.
          probes: [
            {
              type: 'Startup'
              httpGet: {
                path: '/healthz'
                port: port
              }
              periodSeconds: 2
              failureThreshold: 30
            }
            {
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: port
              }
              periodSeconds: 10
              timeoutSeconds: 5
              failureThreshold: 3
            }
            {
              type: 'Readiness'
              httpGet: {
                path: '/readyz'
                port: port
              }
              periodSeconds: 5
              timeoutSeconds: 3
              failureThreshold: 2
            }
          ]
        }
      ]
      scale: {
        // Always on: a call must never wait for a cold start (ACS gives up on a silent media socket).
        minReplicas: 1
        // Why CPU and not the default HTTP rule: the HTTP scaler counts requests started in the last
        // 15 s, and a call is one WebSocket request that lasts minutes, so a replica full of calls
        // looks idle to it. The TCP scaler counts connections but goes with TCP ingress, which would
        // drop the TLS termination ACS needs for wss://.
        maxReplicas: maxReplicas
        // A live call costs steady CPU instead (bench/README.md: 0.5-0.9% of a core per call; TLS adds
        // more), so average CPU tracks live calls: at the default 25% of its vCPUs a replica is added
        // near 30-40 calls per worker (one per vCPU), before a worker's MAX_CONCURRENT_CALLS (50) says
        // 503. Scale-in SIGTERMs a replica: every worker drains (terminationGracePeriodSeconds above).
        rules: [
          {
            name: 'cpu-tracks-live-calls'
            custom: {
              type: 'cpu'
              metadata: {
                type: 'Utilization'
                value: string(cpuScaleThreshold)
              }
            }
          }
        ]
      }
    }
  }
}

output name string = mediaApp.name
output fqdn string = mediaApp.properties.configuration.ingress.fqdn
