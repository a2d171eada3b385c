#!/usr/bin/env pwsh
# azd postprovision hook (PowerShell 7; infra/hooks/postprovision.sh is the same for POSIX shells, keep
# the two in step: tests/infra compares them).
#
# Writes the deployed endpoints and ids into the git-ignored .env at the repo root, so `make up` runs
# against them with your own login (`az login`: AZURE_PRINCIPAL_ID has the data roles, infra/modules/
# roles.bicep). Only a block between two marker lines is the hook's: it is replaced on every provision,
# and every other line of .env stays as it was. Endpoints and ids only, never a key: no key exists
# (local auth is off on every resource), only the names below are copied, and a value that is not a
# plain URL, id or name (`;`, `=`, `?`, spaces, a long run of letters and digits) is skipped.
#
#   AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_DEPLOYMENT   `make up` talks to the deployed model (Entra ID)
#   ACS_RESOURCE_ID                                  the JWT audience (the emulator replaces it while ACS is emulated)
#   # ACS_ENDPOINT                                   commented out: uncommented, `make up` calls through the
#                                                    deployed ACS, which needs CALLBACK_URI_HOST and
#                                                    MEDIA_HOST_URL at a tunnel (docs/deploy.md, "Connect a real ACS number to a laptop")
#   the function, media host, resource group and Application Insights, as comments
#
# Values come from `azd env get-values`; from the environment azd hands its hooks when azd is not on
# PATH. Optional: POSTPROVISION_ENV_FILE, another file than <repo>/.env, or `none` to write nothing.
Set-StrictMode -Version Latest

$Hint = 'Re-run only this step: azd hooks run postprovision'
$Begin = '# >>> azd: the deployed resources (infra/hooks/postprovision.*, rewritten by each azd provision; edit outside this block)'
$End = '# <<< azd'
$Root = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
$EnvFile = if ($env:POSTPROVISION_ENV_FILE) { $env:POSTPROVISION_ENV_FILE } else { Join-Path $Root '.env' }

function Say([string] $Message) {
    Write-Output "postprovision: $Message"
}

function Fail([string] $Message) {
    [Console]::Error.WriteLine("postprovision: ERROR: $Message")
    [Console]::Error.WriteLine("postprovision: $Hint")
    exit 1
}

if ($EnvFile -eq 'none') {
    Say 'POSTPROVISION_ENV_FILE=none: no .env written'
    exit 0
}

# KEY="value" lines of the azd environment being provisioned (`azd up -e <name>` need not be the
# default one); none when azd is not there: the process environment then.
$Values = @{}
if (Get-Command azd -ErrorAction SilentlyContinue) {
    $azdArgs = if ($env:AZURE_ENV_NAME) { @('--environment', $env:AZURE_ENV_NAME) } else { @() }
    $lines = & azd env get-values @azdArgs 2>&1
    if ($LASTEXITCODE -ne 0) {
        [Console]::Error.WriteLine(($lines | Out-String))
        Fail 'azd env get-values failed'
    }
    foreach ($line in $lines) {
        if ([string] $line -match '^([A-Za-z_][A-Za-z0-9_]*)="?([^"]*)"?$') {
            $Values[$Matches[1]] = $Matches[2]
        }
    }
}

# Get-AzdValue NAME: its value in azd's environment, else in this process's.
function Get-AzdValue([string] $Name) {
    if ($Values.ContainsKey($Name) -and $Values[$Name]) {
        return $Values[$Name]
    }
    return [string] [Environment]::GetEnvironmentVariable($Name)
}

# Test-Plain VALUE: a URL, an id or a name, nothing that could be or carry a secret.
function Test-Plain([string] $Value) {
    return ($Value -cmatch '^[A-Za-z0-9][A-Za-z0-9:/._-]*$') -and -not ($Value -cmatch '[A-Za-z0-9]{32,}')
}

$Block = [System.Collections.Generic.List[string]]::new()
$Written = [System.Collections.Generic.List[string]]::new()

# Add-Setting NAME [-Comment]: a line of the block, active or commented out.
function Add-Setting([string] $Name, [switch] $Comment) {
    $value = Get-AzdValue $Name
    if (-not $value) {
        Say "WARNING: $Name is not in the azd environment: left out"
        return
    }
    if (-not (Test-Plain $value)) {
        Say "WARNING: $Name does not look like a URL, an id or a name: left out"
        return
    }
    if ($Comment) {
        $Block.Add("# $Name=$value")
    }
    else {
        $Block.Add("$Name=$value")
        $Written.Add($Name)
    }
}

# Add-Note TEXT NAME: a comment line naming a deployed resource, for reference.
function Add-Note([string] $Text, [string] $Name) {
    $value = Get-AzdValue $Name
    if ($value -and (Test-Plain $value)) {
        $Block.Add("# $Text $value")
    }
}

if (-not (Get-AzdValue 'AZURE_OPENAI_ENDPOINT')) {
    Fail "AZURE_OPENAI_ENDPOINT is not in the azd environment: run 'azd provision' (or 'azd up') first"
}

$Block.Add($Begin)
$Block.Add('# The deployed model, used with your own login (az login; Entra ID, no key exists):')
Add-Setting 'AZURE_OPENAI_ENDPOINT'
Add-Setting 'AZURE_OPENAI_DEPLOYMENT'
$Block.Add('# The deployed ACS resource. ACS_ENDPOINT uncommented makes `make up` call through it instead of the')
$Block.Add('# emulator, with CALLBACK_URI_HOST and MEDIA_HOST_URL at a tunnel (docs/deploy.md, "Connect a real ACS number to a laptop"):')
Add-Setting 'ACS_RESOURCE_ID'
Add-Setting 'ACS_ENDPOINT' -Comment
Add-Note 'resource group:' 'AZURE_RESOURCE_GROUP'
Add-Note 'control plane:' 'FUNCTION_BASE_URL'
Add-Note 'media host:' 'MEDIA_HOST_URL'
Add-Note 'Application Insights (workbook and alerts, docs/operations.md):' 'APPLICATIONINSIGHTS_NAME'
$Block.Add($End)

# The block replaces the previous one where it stood (or is appended); everything else is kept.
$Out = [System.Collections.Generic.List[string]]::new()
$Rest = [System.Collections.Generic.List[string]]::new()
if (Test-Path -LiteralPath $EnvFile -PathType Leaf) {
    $old = @(Get-Content -LiteralPath $EnvFile)
    $begins = @($old | Where-Object { $_ -ceq $Begin }).Count
    $ends = @($old | Where-Object { $_ -ceq $End }).Count
    if ($begins -ne $ends -or $begins -gt 1) {
        Fail "$EnvFile has a broken azd block (its marker lines '$Begin' and '$End' do not pair up): fix or delete them"
    }
    $inside = $false
    $done = $false
    foreach ($line in $old) {
        if ($line -ceq $Begin) {
            $Out.AddRange($Block)
            $inside = $true
            $done = $true
        }
        elseif ($inside -and $line -ceq $End) {
            $inside = $false
        }
        elseif (-not $inside) {
            $Out.Add($line)
            $Rest.Add($line)
        }
    }
    if (-not $done) {
        $Out.AddRange($Block)
    }
}
else {
    $Out.AddRange($Block)
}
try {
    # LF line ends and no BOM, as the POSIX hook writes them: python-dotenv reads both, git diffs stay clean.
    [System.IO.File]::WriteAllText($EnvFile, (($Out -join "`n") + "`n"))
}
catch {
    Fail "could not write ${EnvFile}: $($_.Exception.Message)"
}

Say "wrote $($Written -join ' ') to $EnvFile (no key: you sign in with az login)"
if ($Rest | Where-Object { $_ -match '^\s*(export\s+)?(AZURE_OPENAI_API_KEY|OPENAI_API_KEY)\s*=' }) {
    Say "WARNING: $EnvFile also sets AZURE_OPENAI_API_KEY or OPENAI_API_KEY outside the azd block: comment it out,"
    Say '  or the media host sends that key to the deployed model (refused: keys are off) or sees two vendors'
}
exit 0
