#!/usr/bin/env pwsh
# azd postdeploy hook (PowerShell 7; infra/hooks/postdeploy.sh is the same for POSIX shells, keep
# the two in step: tests/infra compares their Azure CLI calls).
#
# Subscribes the function's /api/incoming-call webhook to ACS's IncomingCall events:
#   1. wait until the deployed function answers GET /api/health with 200 (bounded);
#   2. make sure two function-level keys exist (created once, then reused; never printed): `eventgrid`,
#      which opens incoming_call only, and `outbound`, which opens start_call (POST /api/calls) only.
#      The host keys open every function, so they never leave the operator's hands: a subscription
#      URL is visible to portal readers, and a key that places calls there would be a phone bill;
#   3. create or update the Event Grid subscription on the ACS system topic (a PUT, so re-running is
#      safe): webhook https://<function>/api/incoming-call?code=<eventgrid key>, IncomingCall only,
#      1 event per batch. Event Grid validates the webhook right then, which is why this runs after deploy.
#
# CALLBACK_URI_HOST and MEDIA_HOST_URL are not set here: infra/main.bicep always knows both at
# provision time (the function's own host name, and the media app's FQDN from the Container Apps
# environment's default domain), so this hook only reports /api/health's verdict on them.
#
# Inputs (azd passes its environment, i.e. main.bicep's outputs): AZURE_SUBSCRIPTION_ID (azd's own: every
# az call names it, whatever `az account show` says), AZURE_RESOURCE_GROUP, AZURE_FUNCTION_APP_NAME,
# FUNCTION_BASE_URL, ACS_SYSTEM_TOPIC_NAME. Optional:
# POSTDEPLOY_HEALTH_ATTEMPTS (60), POSTDEPLOY_HEALTH_INTERVAL (5 s), INCOMING_CALL_SUBSCRIPTION
# (incomingcall). Needs the Azure CLI, logged in (`az login`: azd's login is separate).
Set-StrictMode -Version Latest

$Hint = 'Fix the cause above, then re-run only this step: azd hooks run postdeploy'
$script:Key = ''
$script:KeyEncoded = ''

function Say([string] $Message) {
    Write-Output "postdeploy: $Message"
}

# Anything that may echo the webhook URL goes through here: the key never reaches the console.
function Hide-Key([string] $Text) {
    if ($script:Key) {
        $Text = $Text.Replace($script:Key, '***')
        if ($script:KeyEncoded) {
            $Text = $Text.Replace($script:KeyEncoded, '***')
        }
    }
    return $Text
}

function Fail([string] $Message) {
    [Console]::Error.WriteLine("postdeploy: ERROR: $Message")
    [Console]::Error.WriteLine("postdeploy: $Hint")
    exit 1
}

foreach ($name in @('AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_APP_NAME', 'FUNCTION_BASE_URL', 'ACS_SYSTEM_TOPIC_NAME')) {
    if (-not [Environment]::GetEnvironmentVariable($name)) {
        Fail "$name is not set: run 'azd provision' (or 'azd up') first, so azd has the outputs of infra/main.bicep"
    }
}
if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
    Fail 'the Azure CLI (az) is not installed: https://learn.microsoft.com/cli/azure/install-azure-cli'
}

$BaseUrl = $env:FUNCTION_BASE_URL.TrimEnd('/')
$Attempts = if ($env:POSTDEPLOY_HEALTH_ATTEMPTS) { [int] $env:POSTDEPLOY_HEALTH_ATTEMPTS } else { 60 }
$Interval = if ($env:POSTDEPLOY_HEALTH_INTERVAL) { [int] $env:POSTDEPLOY_HEALTH_INTERVAL } else { 5 }
$Subscription = if ($env:INCOMING_CALL_SUBSCRIPTION) { $env:INCOMING_CALL_SUBSCRIPTION } else { 'incomingcall' }

# 1. The function must be live before Event Grid's validation handshake.
Say "waiting for $BaseUrl/api/health (up to $Attempts tries, ${Interval}s apart)"
$status = '000'
$body = ''
for ($attempt = 1; ; $attempt++) {
    try {
        $response = Invoke-WebRequest -Uri "$BaseUrl/api/health" -Method Get -TimeoutSec 10 -SkipHttpErrorCheck
        $status = [string] [int] $response.StatusCode
        $body = [string] $response.Content
    }
    catch {
        $status = '000'
    }
    if ($status -eq '200') {
        break
    }
    if ($attempt -ge $Attempts) {
        Fail "the function did not answer GET $BaseUrl/api/health with 200 after $Attempts tries (last status: $status); check 'azd deploy' output and the function's logs"
    }
    Start-Sleep -Seconds $Interval
}
if ($body -match '"status": *"ok"') {
    Say 'function is live, settings ok'
}
else {
    Say "WARNING: the function is live but reports missing or invalid settings: open $BaseUrl/api/health (names only) and the function's log; calls will be refused until fixed"
}

# 2. Function-level keys. Get-FunctionKey returns the key, creating it (with a value Azure generates)
# only when missing, so re-running never rotates a key in use.
function Get-FunctionKey([string] $Function, [string] $Name) {
    $listOutput = & az functionapp function keys list --subscription $env:AZURE_SUBSCRIPTION_ID --resource-group $env:AZURE_RESOURCE_GROUP `
        --name $env:AZURE_FUNCTION_APP_NAME --function-name $Function --query $Name --output tsv 2>&1
    if ($LASTEXITCODE -ne 0) {
        [Console]::Error.WriteLine(($listOutput | Out-String))
        Fail "could not read the keys of function $Function in $($env:AZURE_FUNCTION_APP_NAME) (is the Azure CLI logged in to a tenant with subscription $($env:AZURE_SUBSCRIPTION_ID)? az login)"
    }
    $value = (($listOutput | Where-Object { $_ -isnot [System.Management.Automation.ErrorRecord] }) -join '').Trim()
    if ($value) {
        return $value
    }
    $setOutput = & az functionapp function keys set --subscription $env:AZURE_SUBSCRIPTION_ID --resource-group $env:AZURE_RESOURCE_GROUP `
        --name $env:AZURE_FUNCTION_APP_NAME --function-name $Function --key-name $Name --query value --output tsv 2>&1
    if ($LASTEXITCODE -ne 0) {
        [Console]::Error.WriteLine(($setOutput | Out-String))
        Fail "could not create the key '$Name' of function $Function in $($env:AZURE_FUNCTION_APP_NAME)"
    }
    $value = (($setOutput | Where-Object { $_ -isnot [System.Management.Automation.ErrorRecord] }) -join '').Trim()
    if (-not $value) {
        Fail "function $Function of $($env:AZURE_FUNCTION_APP_NAME) has no key '$Name' yet (the host may still be starting)"
    }
    Write-Host "postdeploy: created the function key '$Name' of $Function"  # not Say: that would join the return value
    return $value
}

$null = Get-FunctionKey 'start_call' 'outbound'
$script:Key = Get-FunctionKey 'incoming_call' 'eventgrid'
# Keys are base64-like: +, / and = must not be read as a space or a separator in the query string.
$script:KeyEncoded = [Uri]::EscapeDataString($script:Key)

# 3. Create or update the subscription (az ... create is a PUT: idempotent).
Say "subscribing $BaseUrl/api/incoming-call to Microsoft.Communication.IncomingCall on $($env:ACS_SYSTEM_TOPIC_NAME) (subscription '$Subscription')"
$createOutput = & az eventgrid system-topic event-subscription create `
    --subscription $env:AZURE_SUBSCRIPTION_ID `
    --name $Subscription `
    --resource-group $env:AZURE_RESOURCE_GROUP `
    --system-topic-name $env:ACS_SYSTEM_TOPIC_NAME `
    --endpoint-type webhook `
    --endpoint "$BaseUrl/api/incoming-call?code=$($script:KeyEncoded)" `
    --event-delivery-schema eventgridschema `
    --included-event-types Microsoft.Communication.IncomingCall `
    --max-events-per-batch 1 `
    --max-delivery-attempts 3 `
    --event-ttl 1 `
    --output none 2>&1
if ($LASTEXITCODE -ne 0) {
    [Console]::Error.WriteLine((Hide-Key ($createOutput | Out-String)))
    Fail "could not create or update the Event Grid subscription '$Subscription' (a failed validation handshake means /api/incoming-call did not answer it: check the function's log)"
}
Say "done: calls to the ACS resource's numbers now reach $BaseUrl/api/incoming-call"
Say "POST $BaseUrl/api/calls takes the start_call key 'outbound' (?code=); read it with"
Say "  az functionapp function keys list -g $($env:AZURE_RESOURCE_GROUP) -n $($env:AZURE_FUNCTION_APP_NAME) --function-name start_call --query outbound -o tsv --subscription $($env:AZURE_SUBSCRIPTION_ID)"
Say 'It calls only numbers on OUTBOUND_ALLOW_LIST (empty: none), at most OUTBOUND_CALLS_PER_MINUTE per instance.'
exit 0
