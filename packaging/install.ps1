# Install sense-license-agent @VERSION@ from this offline bundle: a virtual environment in
# -Target (default C:\Program Files\sense-license-agent\venv), packages only from .\wheels,
# no network. Run in an elevated PowerShell:
#   powershell -ExecutionPolicy Bypass -File install.ps1
#   powershell -ExecutionPolicy Bypass -File install.ps1 -Target D:\sla\venv -Python C:\Python312\python.exe
param(
    [string]$Target = "C:\Program Files\sense-license-agent\venv",
    [string]$Python = ""
)
$ErrorActionPreference = "Stop"
$here = Split-Path -Parent $MyInvocation.MyCommand.Path
$wheels = Join-Path $here "wheels"

function Test-Python([string[]]$command) {
    # True when the command runs a CPython 3.10 to 3.13.
    try {
        $exe = $command[0]
        $rest = @($command | Select-Object -Skip 1)
        & $exe @rest -c "import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))" 2>$null
        return $LASTEXITCODE -eq 0
    } catch {
        return $false
    }
}

if ($Python) {
    $command = @($Python)
    if (-not (Test-Python $command)) {
        Write-Error "$Python is not CPython 3.10 to 3.13: this bundle has wheels for those versions"
        exit 2
    }
} else {
    # The py launcher of python.org's installer, newest version first.
    $command = $null
    foreach ($version in "3.13", "3.12", "3.11", "3.10") {
        if (Test-Python @("py", "-$version")) { $command = @("py", "-$version"); break }
    }
    if (-not $command) {
        Write-Error "no Python 3.10 to 3.13 found (py launcher); install one from python.org or pass -Python C:\path\to\python.exe"
        exit 2
    }
}

Write-Host "creating the virtual environment $Target"
$exe = $command[0]
$rest = @($command | Select-Object -Skip 1)
& $exe @rest -m venv $Target
if ($LASTEXITCODE -ne 0) { Write-Error "python -m venv $Target failed"; exit 1 }

# Only the bundle: no index, no pip configuration of this machine, no cache.
$env:PIP_CONFIG_FILE = "NUL"
$env:PIP_NO_INDEX = "1"
$env:PIP_FIND_LINKS = $wheels
$env:PIP_NO_CACHE_DIR = "1"
$env:PIP_DISABLE_PIP_VERSION_CHECK = "1"
$venvPython = Join-Path $Target "Scripts\python.exe"
& $venvPython -m pip install --no-index --find-links $wheels "sense-license-agent[prometheus]==@VERSION@"
if ($LASTEXITCODE -ne 0) { Write-Error "pip install from $wheels failed"; exit 1 }

$agent = Join-Path $Target "Scripts\license-agent.exe"
& $agent --version
Write-Host "installed: $agent (try: & `"$agent`" demo)"
