"""A private, real Postfix instance for end-to-end tests.

Its own configuration, queue and data directories live in one temp directory; it
listens on loopback ports only; it is started with `postfix -c DIR start` and stopped
with `postfix -c DIR stop` (and by its master's PID if that fails). The system's own
Postfix instance is never touched (it need not be configured or running).

Its main.cf is `contrib/postfix/main.cf` exactly as documented, followed by a block
that makes it a private instance (in main.cf the last setting of a parameter wins);
its transport table
is written for the ports of the test; its master.cf is the daemons Postfix needs plus `contrib/postfix/master.cf` with the
documented ports swapped for free loopback ports. So the documented lines are what
the test runs.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "postfix"
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])

# The daemons of a Postfix instance (Debian's master.cf, without chroot, without
# local delivery), each service once; the contrib lines add the two smtpd ports.
MASTER_BASE = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# What makes the documented main.cf a private test instance.
PRIVATE = """
# --- a private test instance (tests/support/postfix.py) ---
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
syslog_name = postfix-mailhub-test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.test.invalid
mydomain = test.invalid
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
notify_classes =
default_transport = error:5.7.1 this test instance delivers nowhere else
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtpd_peername_lookup = no
# The SMTP client in the test waits for a verification probe: look every second.
address_verify_poll_delay = 1s
{extra}
"""


def unavailable() -> str | None:
    """Why a private Postfix cannot run here (a skip reason), or None."""
    if postfix_command() is None:
        return "postfix is not installed (Debian package `postfix`; .ci/run installs it)"
    if os.geteuid() != 0:
        return "a private Postfix instance must be started as root (`postfix -c DIR start`)"
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError:
        return "the postfix user or the postdrop group is missing (reinstall the postfix package)"
    return None


def postfix_command() -> str | None:
    return shutil.which("postfix", path=SEARCH_PATH)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, deadline: float) -> None:
    """Until something accepts on 127.0.0.1:port (a short poll of an external process)."""
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass
class Postfix:
    """One private instance. `transports`: domain -> Postfix transport (e.g. the
    community domain -> `lmtp:inet:127.0.0.1:HUBPORT`, a members' domain ->
    `smtp:[127.0.0.1]:SINKPORT`)."""

    transports: dict[str, str]
    extra_main: str = ""
    inbound_port: int = field(default_factory=free_port)
    outbound_port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mailhub-pf-")))

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    def write_config(self) -> None:
        # The daemons run as `postfix`: every directory on the way must be searchable.
        self.root.chmod(0o755)
        self.etc.mkdir(exist_ok=True)
        (self.root / "queue").mkdir(exist_ok=True)  # root's; `postfix start` fills it
        (self.root / "data").mkdir(exist_ok=True)
        shutil.chown(self.root / "data", "postfix", "postfix")
        main = (CONTRIB / "main.cf").read_text()
        # The documented table, at its place in this instance (no "overriding" warning).
        main = main.replace("/etc/postfix/mailhub_transport", str(self.etc / "mailhub_transport"))
        main += PRIVATE.format(root=self.root, extra=self.extra_main)
        (self.etc / "main.cf").write_text(main)
        master = (CONTRIB / "master.cf").read_text()
        # The documented ports -> free loopback ports; chroot off (nothing under the queue).
        # The test's "internet" client is on loopback too: to the inbound port it is a
        # stranger (no mynetworks), as any client of port 25 is.
        master = re.sub(
            r"^smtp(\s+inet.*)$",
            rf"127.0.0.1:{self.inbound_port}\1\n  -o mynetworks=",
            master,
            count=1,
            flags=re.M,
        )
        master = master.replace("127.0.0.1:10025", f"127.0.0.1:{self.outbound_port}")
        master = re.sub(r"^(\S+\s+inet\s+\S+\s+\S+\s+)y(\s)", r"\1n\2", master, flags=re.M)
        (self.etc / "master.cf").write_text(MASTER_BASE + master)
        (self.etc / "mailhub_transport").write_text(
            "".join(f"{domain} {transport}\n" for domain, transport in self.transports.items())
        )

    def postfix(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = postfix_command()
        assert command is not None
        return subprocess.run(
            [command, "-c", str(self.etc), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def postconf(self, *args: str) -> str:
        command = shutil.which("postconf", path=SEARCH_PATH)
        assert command is not None
        done = subprocess.run(
            [command, "-c", str(self.etc), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def start(self, timeout: float = 30.0) -> None:
        self.write_config()
        done = self.postfix("start")
        if done.returncode != 0:
            raise RuntimeError(
                f"postfix start failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                f"\n{self.maillog()}"
            )
        deadline = time.monotonic() + timeout
        wait_port(self.inbound_port, deadline)
        wait_port(self.outbound_port, deadline)

    def master_pid(self) -> int | None:
        try:
            return int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self.master_pid()
        done = self.postfix("stop", timeout=30)
        if pid is not None:
            # `postfix stop` waits for the master; should it fail, end it by its PID.
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if done.returncode != 0 and pid is not None and _alive(pid):
            raise RuntimeError(f"postfix stop failed: {done.stdout}{done.stderr}")

    def maillog(self) -> str:
        try:
            return (self.root / "maillog").read_text(errors="replace")
        except OSError:
            return ""

    def queued(self) -> list[str]:
        """The messages Postfix still holds (queue files, in any queue)."""
        queue = self.root / "queue"
        return [
            f.name
            for name in ("maildrop", "incoming", "active", "deferred", "hold")
            for f in (queue / name).rglob("*")
            if f.is_file()
        ]

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def lmtp_destinations(ports: list[int]) -> str:
    """One LMTP transport whose next-hop is a list of destinations, tried in the order given
    (Postfix 3.5 and later): `lmtp:[127.0.0.1]:P1, [127.0.0.1]:P2`. Without `inet:`: Postfix
    strips that prefix once, from the start of the whole next-hop, so an `inet:` before the
    second destination is a fatal error of the lmtp client (Postfix 3.7: "valid hostname or
    network address required in server description: inet:[127.0.0.1]:P2")."""
    return "lmtp:" + ", ".join(f"[127.0.0.1]:{port}" for port in ports)


class RelayTo:
    """Stands in for the Sink that `tests.support.hub.start_hub` relays to: only its port
    is read (mailhub's `[outbound] relay`), here Postfix's loopback smtpd."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def stop(self) -> None:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours would count as alive; the master is not our child
    # (postfix-script daemonises it), so this is not a concern.
    return True
