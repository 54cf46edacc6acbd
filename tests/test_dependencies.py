"""The install floors exclude every release with a published advisory (issue 15 item 11).

A floor is what a fresh ``pip install django-omnisend`` may resolve to, so a floor inside a
vulnerable range lets a resolver pick that release. The fixed versions below come from the
advisories; the installed versions (what the tests ran with) must satisfy the floors too.
"""

from __future__ import annotations

import configparser
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

SETUP_CFG = Path(__file__).resolve().parents[1] / "setup.cfg"

#: Package -> the first release outside every advisory's range, and the advisories.
FIXED_IN = {
    # CVE-2024-35195 (2.32.0: verify=False sticking to a pooled connection), CVE-2024-47081
    # (2.32.4: .netrc credentials for the wrong host), CVE-2026-25645 (2.33.0:
    # extract_zipped_paths writing to a predictable location).
    "requests": "2.33.0",
    # GHSA-r6ph-v2qm-q3c2 (46.0.5), GHSA-537c-gmf6-5ccf (48.0.1: vulnerable OpenSSL in the
    # wheels), GHSA-jwv3-5hgf-82ww / GHSA-m2h6-j472-rp4c (49.0.0: X.509 path building and
    # name constraints), GHSA-g6cj-pr64-35w5 (50.0.0: PKCS#7 Bleichenbacher oracle).
    "cryptography": "50.0.0",
}


def install_requires() -> dict[str, Requirement]:
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    lines = parser["options"]["install_requires"].strip().splitlines()
    requirements = [Requirement(line.strip()) for line in lines if line.strip()]
    return {r.name.lower(): r for r in requirements}


def floor(requirement: Requirement) -> Version:
    floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "~=")]
    assert floors, f"{requirement} has no floor"
    return max(floors)


@pytest.mark.parametrize("name", sorted(FIXED_IN))
def test_floor_excludes_releases_with_advisories(name):
    requirement = install_requires()[name]
    assert floor(requirement) >= Version(FIXED_IN[name]), requirement


@pytest.mark.parametrize("name", sorted(install_requires()))
def test_installed_versions_satisfy_the_floors(name):
    requirement = install_requires()[name]
    assert requirement.specifier.contains(version(name), prereleases=True), (
        f"installed {name} {version(name)} does not satisfy {requirement}"
    )
