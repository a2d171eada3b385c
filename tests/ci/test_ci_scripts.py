""".ci/: shellcheck-clean, and .ci/apt-ensure (the one apt step of `make test`, for Debian's Chromium)
run against stand-ins for `id` and `apt-get`: silent when nothing is missing, one line and exit 1
when it cannot install, one `apt-get update` and one install with a lock timeout when it can."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ci.files import ROOT, venv_tool

APT_ENSURE = ROOT / ".ci" / "apt-ensure"
SCRIPTS = sorted(p for p in (ROOT / ".ci").iterdir() if p.is_file())


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_is_clean(script: Path) -> None:
    assert script.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")
    result = subprocess.run(
        [venv_tool("shellcheck"), str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


class Machine:
    """A PATH of stand-ins: `id -u` answers the given uid; `apt-get` logs its arguments and, on
    install, creates the probes of the packages it installs (unless told the package is broken)."""

    def __init__(self, tmp: Path, uid: int, apt: bool = True, broken: bool = False) -> None:
        self.shims = tmp / "shims"
        self.shims.mkdir()
        self.log = tmp / "apt.log"
        self.probes = tmp / "probes"
        self.probes.mkdir()
        self.write("id", f'#!/bin/sh\n[ "$1" = -u ] && echo {uid}\n')
        if apt:
            install = (
                ""
                if broken
                else f'for p; do case "$p" in -*) ;; *) touch "{self.probes}/$p"; chmod +x "{self.probes}/$p";; esac; done\n'
            )
            self.write(
                "apt-get",
                f'#!/bin/sh\necho "$*" >> "{self.log}"\n'
                f'case "$*" in *" install "*) {install or ":"} ;; esac\n',
            )

    def write(self, name: str, text: str) -> None:
        path = self.shims / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755)

    def probe(self, package: str) -> str:
        return f"{package}:{self.probes / package}"

    def apt_calls(self) -> list[str]:
        return self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []

    def run(self, *args: str, system_path: bool = True) -> subprocess.CompletedProcess[str]:
        path = f"{self.shims}:/usr/bin:/bin" if system_path else str(self.shims)
        bash = shutil.which("bash")
        assert bash
        return subprocess.run(
            [bash, str(APT_ENSURE), *args],
            capture_output=True,
            text=True,
            check=False,
            env={"PATH": path},
            timeout=30,
        )


def test_nothing_missing_is_silent_and_never_calls_apt(tmp_path: Path) -> None:
    machine = Machine(tmp_path, uid=1000)
    (machine.probes / "chromium").touch(mode=0o755)
    result = machine.run(machine.probe("chromium"), "sh")  # a command probe (the package's name) too
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert machine.apt_calls() == []


def test_not_root_says_so_in_one_line(tmp_path: Path) -> None:
    machine = Machine(tmp_path, uid=1000)
    result = machine.run(machine.probe("chromium"), machine.probe("fonts"))
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("apt-ensure: chromium fonts missing and not root: run 'sudo .ci/apt-ensure ")
    assert machine.apt_calls() == []


def test_no_apt_get_says_so_in_one_line(tmp_path: Path) -> None:
    machine = Machine(tmp_path, uid=0, apt=False)
    result = machine.run(machine.probe("chromium"), system_path=False)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("apt-ensure: chromium missing and no apt-get here")


def test_root_installs_what_is_missing_at_once_waiting_for_the_apt_lock(tmp_path: Path) -> None:
    machine = Machine(tmp_path, uid=0)
    (machine.probes / "present").touch(mode=0o755)
    result = machine.run(machine.probe("chromium"), machine.probe("present"), machine.probe("fonts"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "apt-ensure: installing chromium fonts\n"
    update, install = machine.apt_calls()
    assert update == "-o DPkg::Lock::Timeout=120 update -qq"
    assert install == "-o DPkg::Lock::Timeout=120 install -y -qq chromium fonts"


def test_a_package_that_brings_no_probe_fails(tmp_path: Path) -> None:
    # Ubuntu's chromium package, for one, is a snap stub without /usr/lib/chromium/chromium.
    machine = Machine(tmp_path, uid=0, broken=True)
    result = machine.run(machine.probe("chromium"))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("apt-ensure: installed chromium, yet ")
