"""The wheel: built from the repository, installed into a fresh virtual environment, it runs
`mailhub serve` from an unrelated directory with the templates shipped inside the package.

The project's dependencies are not downloaded again: the fresh environment sees this
environment's site-packages through a .pth file (added after mailhub itself is installed,
so the wheel's copy comes first on sys.path). That keeps the test fast and offline; only
the isolated build of the wheel needs setuptools from the configured index.
"""

from __future__ import annotations

import email
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOMAIN = "cop.example.org"
# What a build reads from the checkout.
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "mailhub", "templates")

CONFIG = """
[server]
domains = ["{domain}"]
listen = "127.0.0.1:{port}"
[storage]
path = "var/mailhub.db"
[outbound]
maildir = "outbox"
[admin]
addresses = ["admin@example.net"]
"""


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 120) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
    )
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAILHUB_CONFIG")}
    env.pop("VIRTUAL_ENV", None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"mailhub serve did not listen on {port}")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the checkout (the build writes build/ and egg-info
    next to its sources; other work in the checkout is left alone)."""
    root = tmp_path_factory.mktemp("build")
    src = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "dist", src)
    (found,) = (root / "dist").glob("mailhub-*.whl")
    return found


def test_the_wheel_ships_the_templates(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (REPO / "templates").rglob("*.txt"):
        assert f"mailhub/templates/{path.relative_to(REPO / 'templates').as_posix()}" in names
    assert "mailhub/cli.py" in names and not any(n.startswith("templates/") for n in names)


def test_an_installed_wheel_serves_mail_from_any_directory(wheel: Path, tmp_path: Path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    site = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "mailhub-deps.pth").write_text("\n".join(sorted(ours)) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    mailhub = venv / "bin" / "mailhub"
    assert run(mailhub, "--version", cwd=elsewhere).strip() == "mailhub 0.1.0"
    where = run(
        python,
        "-c",
        "import mailhub, mailhub.config as c; print(mailhub.__file__); "
        "print(c.default_templates_dir())",
        cwd=elsewhere,
    ).split()
    assert all(Path(p).is_relative_to(venv) for p in where), where

    port = free_port()
    (elsewhere / "site.toml").write_text(CONFIG.format(domain=DOMAIN, port=port))
    proc = subprocess.Popen(
        [str(mailhub), "serve", "--config", "site.toml"],
        cwd=elsewhere,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, proc)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail(
                "sam@example.net",
                [f"enquiries@{DOMAIN}"],
                f"From: sam@example.net\r\nTo: enquiries@{DOMAIN}\r\nSubject: Hello\r\n"
                "Message-ID: <packaging@example.net>\r\n\r\nA question.\r\n",
            )
        outbox = elsewhere / "outbox" / "new"
        deadline = time.monotonic() + 20
        delivered: dict[str, email.message.Message] = {}
        while time.monotonic() < deadline and len(delivered) < 2:
            time.sleep(0.1)
            for path in outbox.glob("*") if outbox.is_dir() else ():
                msg = email.message_from_bytes(path.read_bytes())
                delivered[str(msg["Delivered-To"])] = msg
        # The forward to the administrators, and the acknowledgement (a rendered template).
        assert set(delivered) == {"admin@example.net", "sam@example.net"}
        assert delivered["sam@example.net"]["Auto-Submitted"] == "auto-replied"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, proc.stderr.read() if proc.stderr else ""
