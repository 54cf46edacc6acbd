"""The README's Install section, pasted into a new ``startproject`` site, works as written.

The site is built in a temporary folder exactly as a new user would: ``python -m django
startproject mysite .``, then every Python block of "Install" appended to the file its first
line names (see :mod:`tests.example.readme_blocks`). The section's commands run in order in
child processes, as the README gives them, with three differences a test needs:

* ``pip install django-omnisend`` is not run: the folder holding this test process's
  ``django_omnisend`` is put first on ``PYTHONPATH``, so the site imports the code under test.
* The emulator is started on a free port (``--port`` added) instead of 8787, and the exported
  ``OMNISEND_EMULATOR_URL`` is pointed at that port; every other exported value is checked
  against what the emulator's start page (``GET /``) shows, as the README tells users to copy.
* The long-running worker (``omnisend_drain --loop``) runs as one pass (``--once``) after a
  user is created with ``createsuperuser``; ``runserver`` is only checked to exist.

Then the contact must be in the emulator, read over HTTP from its control API. The docs page
"Testing your project with the emulator" (docs/guides/testing.rst) is run the same way: its
``pytest.ini``, ``conftest.py`` and test module go into the same site, and ``python -m pytest``
must pass. (docs/quickstart.rst repeats the Install blocks; tests/test_docs.py checks they are
the README's.)
Neither the settings module of this suite nor any OMNISEND_* variable of the caller reaches the
site. Django 5.2 has no ``django.tasks`` (the backport may or may not be installed): the Install
settings set ``TASK_BACKEND`` to ``None``, so ``check`` and ``migrate`` print no W006 there
either, which this test asserts on every version it runs on.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

import django_omnisend

from .demo_site import free_port, terminate
from .readme_blocks import TESTING_GUIDE, Block, code_blocks, exports, section

pytestmark = pytest.mark.slow

#: How each ``python manage.py <command>`` of the Install section is run here.
RUN, EMULATOR, ONE_PASS, EXISTS = "run", "emulator", "one pass", "exists"
HANDLING = {
    "migrate": RUN,
    "check": RUN,
    "omnisend_emulator": EMULATOR,
    "omnisend_drain": ONE_PASS,
    "runserver": EXISTS,
}
EMAIL = "ann@example.com"
#: Variables of the caller that would steer the new site or its test run.
_STRIPPED_PREFIXES = ("OMNISEND_", "DJANGO_", "PYTEST_")


def base_env() -> dict[str, str]:
    """The caller's environment minus Omnisend/Django/pytest steering, with our package first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_PREFIXES)}
    package_root = str(Path(django_omnisend.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [package_root, os.environ.get("PYTHONPATH", "")] if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    """Run a command to completion; fail with its output unless it exits 0."""
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{shlex.join(args)} exited {done.returncode}:\n{output}"
    return output


def python_command(command: str) -> list[str]:
    """``python manage.py ...`` from the README with this interpreter."""
    words = shlex.split(command)
    assert words[0] == "python", command
    return [sys.executable, *words[1:]]


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write("\n\n" + text)


def write_blocks(site: Path, blocks: list[Block]) -> list[str]:
    """Append every Python/ini block to its file; returns the targets in order."""
    targets = []
    for block in blocks:
        if block.language == "console":
            continue
        assert block.language in ("python", "ini"), block.language
        target = block.target
        folder = site / "mysite" if target in ("settings.py", "urls.py") else site
        append(folder / target, block.text)
        targets.append(target)
    return targets


@dataclass
class Background:
    """A long-running command (the emulator's terminal), its output in a file."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_emulator(args: list[str], site: Path, env: dict[str, str]) -> Background:
    """Start the README's emulator command; returns once it says it is serving."""
    log = site / "emulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=site, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    emulator = Background(process, log)
    deadline = time.monotonic() + 60
    while "Serving" not in emulator.output():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(emulator)
            pytest.fail(f"{shlex.join(args)} did not start:\n{emulator.output()}")
        time.sleep(0.1)
    return emulator


def stop(emulator: Background) -> str:
    """SIGTERM, as Ctrl-C in its terminal would; returns all it printed."""
    terminate(emulator.process)
    return emulator.output()


def start_page(base_url: str) -> dict[str, str]:
    """The emulator's ``GET /`` as ``{"API key": ..., "Client ID": ..., ...}``."""
    response = requests.get(base_url + "/", timeout=10)
    assert response.status_code == 200
    shown = {}
    for line in response.text.splitlines()[1:]:
        name, _, value = line.partition(":")
        shown[name.strip()] = value.strip().split()[0] if value.strip() else ""
    return shown


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new ``startproject`` site with the Install blocks pasted in."""
    folder = tmp_path_factory.mktemp("readme-site")
    run([sys.executable, "-m", "django", "startproject", "mysite", "."], folder, base_env())
    targets = write_blocks(folder, code_blocks(section("Install")))
    assert targets == ["settings.py", "settings.py", "urls.py"]
    yield folder


class Walkthrough:
    """A user following the Install section's commands in ``site``, one at a time."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.env = base_env()
        # The README asks for a key kept with the site's secrets; this user has one.
        self.env["OMNISEND_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
        self.known = run([sys.executable, "manage.py", "help", "--commands"], site, self.env)
        self.emulator: Background | None = None
        self.emulator_url = ""
        self.handled: list[str] = []

    def follow(self, command: str) -> None:
        if command.startswith("export "):
            self.export(exports(command))
            return
        args = python_command(command)
        assert args[1] == "manage.py", command
        name = args[2]
        assert name in self.known.split(), f"README runs manage.py {name}, which is unknown"
        how = HANDLING.get(name)
        assert how is not None, f"teach this test how to follow {command!r}"
        self.handled.append(name)
        if how == RUN:
            output = run(args, self.site, self.env)
            # The W006 stumble: the system checks print nothing on any command.
            assert "System check identified some issues" not in output, output
            if name == "check":
                assert "System check identified no issues" in output, output
        elif how == EMULATOR:
            port = free_port()
            self.emulator = start_emulator([*args, "--port", str(port)], self.site, self.env)
            self.emulator_url = f"http://127.0.0.1:{port}"
        elif how == ONE_PASS:
            assert args[3:] == ["--loop"], command
            self.create_user()
            output = run([*args[:3], "--once"], self.site, self.env)
            assert "System check identified some issues" not in output, output

    def export(self, values: dict[str, str]) -> None:
        """Take the exported values, checking each one the README has users copy from the
        emulator against its start page."""
        assert self.emulator is not None, "the README exports before it starts the emulator"
        assert values["OMNISEND_EMULATOR_URL"] == "http://127.0.0.1:8787"  # its default port
        values["OMNISEND_EMULATOR_URL"] = self.emulator_url
        shown = start_page(self.emulator_url)
        assert shown["API"] == self.emulator_url + "/api"
        assert shown["Authorize"] == self.emulator_url + "/oauth2/authorize"
        assert shown["API key"] == values["OMNISEND_API_KEY"]
        assert shown["Client ID"] == values["OMNISEND_CLIENT_ID"]
        assert shown["Client secret"] == values["OMNISEND_CLIENT_SECRET"]
        self.env.update(values)

    def create_user(self) -> None:
        """A user saved in the site, as its admin or sign-up form would."""
        env = {**self.env, "DJANGO_SUPERUSER_PASSWORD": "a-long-test-password-1"}
        args = ["createsuperuser", "--noinput", "--username", "ann", "--email", EMAIL]
        run([sys.executable, "manage.py", *args], self.site, env)

    def contacts(self) -> list[str]:
        """E-mails of the emulator's contacts, read over HTTP from its control API."""
        response = requests.get(self.emulator_url + "/__emulator__/contacts", timeout=10)
        return [c["email"] for c in response.json()]


def test_install_section_builds_a_site_that_syncs_to_the_emulator(site):
    blocks = code_blocks(section("Install"))
    commands = [c for block in blocks if block.language == "console" for c in block.commands()]
    assert commands[0] == "pip install django-omnisend"
    user = Walkthrough(site)
    try:
        for command in commands[1:]:
            user.follow(command)
        assert user.handled == [
            "omnisend_emulator", "migrate", "check", "omnisend_drain", "runserver"
        ]  # fmt: skip
        assert user.contacts() == [EMAIL]
    finally:
        printed = stop(user.emulator) if user.emulator is not None else ""
    assert user.emulator.process.returncode == 0 and "Emulator stopped." in printed, printed


def test_testing_section_runs_in_the_same_site(site):
    blocks = code_blocks(section("Testing your project with the emulator", TESTING_GUIDE))
    targets = write_blocks(site, blocks)
    assert targets == ["pytest.ini", "conftest.py", "test_omnisend.py"]
    pytest_run = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    output = run(pytest_run, site, base_env())
    assert "1 passed" in output, output
