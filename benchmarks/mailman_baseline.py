"""GNU Mailman 3's fan-out beside mailhub's, in the same run (run by hand, not a test).

Issue 12 item 9 asks for personalised (VERP) delivery to 1,000 members at >= 3x GNU
Mailman 3's fan-out rate and bulk at >= 25x, measured side by side on the same machine.
This script installs Mailman core (`mailman` from PyPI) into its own venv under
~/.cache/mailhub-bench/mailman-venv, never into ours, and then alternates rounds:
Mailman, mailhub, Mailman, mailhub... (the machine's speed moves +-30 % from minute to
minute, so only figures from neighbouring rounds are compared), for bulk and for
personalised delivery, and prints each round and the median of the per-round ratios.

Mailman's side (a child process on Mailman's venv; see `mailman_round`): a fresh
mailman.cfg and SQLite database in a temp dir, one list of --members members made
through Mailman's API, [mta] pointed at fanout.py's lean SMTP sink on loopback,
max_recipients and max_sessions_per_connection at their defaults (10 and 0), one
outgoing runner (its default), and for the personalised case personalize = individual
(a copy per member, footer decorated per member, To: untouched: the nearest to mailhub's
personalised copies) with verp_personalized_deliveries: yes and verp_delivery_interval: 1.
Each post is parsed and queued as Mailman's LMTP runner does, then Mailman's incoming
runner (the posting chain) and pipeline runner (member-recipients, headers, to-outgoing)
work the queue, untimed in the rate. The rate is Mailman's outgoing runner alone, from
its first call to the last recipient counted at the sink: everything that runner does per
message (unpickling the queue entry, the VERP decision, `mailman.mta.deliver.deliver`
with a deep copy, footer decoration, member lookup and SMTP for each member, or
`BulkDelivery` in chunks of max_recipients, all in lock-step smtplib). Leaving Mailman's
intake and pipeline out only flatters Mailman; a second figure counts its chain +
pipeline too, as if overlapped with the outgoing runner (they are separate processes):
the slower of the two stages bounds that rate.

mailhub's side: `benchmarks/fanout.py` (real Service, intake over SMTP, processing,
relay delivery over 8 connections, its own sink in a child process) run in a child
process on our venv, with its POST replaced by the same post; its rate runs from the
first post accepted to the last delivery at its sink, so it includes the intake and
processing that Mailman's headline rate leaves out.

The post is the same on both sides (~2.8 KB of plain text; ~3.6 KB a copy with the list
headers and footer each adds). Also printed: CPU per delivery (Mailman: its outgoing
runner; mailhub: its whole process, setup included), which a busy neighbour on the
machine does not inflate as it does wall time.

    .venv/bin/python benchmarks/mailman_baseline.py [--rounds 3] [--members 1000]
        [--bulk-posts MAILMAN MAILHUB] [--personalised-posts MAILMAN MAILHUB]
    .venv/bin/python benchmarks/mailman_baseline.py --profile   # Mailman personalised, cProfile

Loopback only, and bounded: a delivery run stops after --timeout seconds and every child
is killed soon after.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAILMAN_VERSION = "3.3.10"
MAILMAN_VENV = Path.home() / ".cache" / "mailhub-bench" / "mailman-venv"
DOMAIN = "cop.example.org"
MODES = ("bulk", "personalised")

# A list post of ordinary size: ~3 KB of plain text with a quoted part and a signature.
# `str.format` fields: {domain} and {n}, as benchmarks/fanout.py's POST has.
POST_BODY = """\
Hello everyone,

Following last week's call, I said I would write up where we have got to with
the bilingual forms review, so that those who could not join can comment before
the next meeting.

We looked at the twelve forms that bring in the most contact from the public.
Eight of them are already available in Welsh and English side by side, but in
four of those the Welsh version lags behind the English one by one or two
releases, because changes are made in English first and sent for translation
afterwards. The other four forms exist only in English, with a note saying that
a Welsh version is available on request, which in practice nobody asks for.

Three suggestions came out of the discussion:

1. Treat the two languages as one release: a change is not published until
   both versions are ready, and the translation is part of the definition of
   done rather than a step that happens later.

2. Keep a shared glossary of the terms that appear on most forms (address,
   date of birth, reference number, declaration), agreed once with the
   translation team, so that each form does not start from scratch.

3. Ask the people who answer the phones which questions confuse callers most,
   in either language, and fix those first.

> On the last call, someone asked whether the online forms could remember the
> language a person chose on the landing page. They can, and two of ours
> already do; the others reset to English on every page, which is the most
> common complaint in the feedback we collected.

We also agreed to test the two slowest forms with people who use Welsh every
day, rather than only with staff, and to record how long each form takes in
each language. Two volunteers have offered to help recruit participants through
their local community groups, and the research team will share the questions
beforehand so that the sessions can run in either language without a separate
script. The results will go into the same shared folder as the glossary.

If you have examples from your own organisation of what worked, or did not,
please reply to the list; it would help to hear from smaller bodies in
particular, where there is no dedicated translation team. I will collect the
replies and circulate a summary before the next call, in both languages.

Thank you to everyone who took part, and to the facilitators for keeping us to
time.

Best wishes,
Sam

--
Sam Example
Digital Services, Example Council
"""
POST = (
    "From: Sam Example <poster@example.net>\r\nTo: bench@{domain}\r\n"
    "Subject: Post {n}: where we are with the bilingual forms review\r\n"
    "Date: Mon, 02 Jun 2025 09:30:00 +0100\r\nMessage-ID: <bench-{n}@example.net>\r\n"
    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n"
    "Content-Transfer-Encoding: 7bit\r\n\r\n" + POST_BODY.replace("\n", "\r\n")
)

MAILMAN_CFG = """\
[mailman]
site_owner: admin@example.net
layout: bench

[paths.bench]
var_dir: {var}

[mta]
# Creating a list must not touch a real MTA's maps.
incoming: mailman.mta.null.NullMTA
smtp_host: 127.0.0.1
smtp_port: {port}
verp_personalized_deliveries: {verp}
verp_delivery_interval: {interval}
"""

# --- Mailman's side: runs in a child process on Mailman's own venv ---------------------


def versions() -> str:
    from importlib.metadata import version

    names = ("mailman", "sqlalchemy", "aiosmtpd")
    return (
        ", ".join(f"{name} {version(name)}" for name in names)
        + f", Python {sys.version.split()[0]}"
    )


def mailman_round(args: argparse.Namespace) -> int:
    """One round of Mailman fan-out. Prints one JSON line; with --profile, then the
    top 10 functions of the timed part by own time, and Mailman's own by cumulative time."""
    with tempfile.TemporaryDirectory(prefix=f"mailman-{args.mode}-") as work:
        return _mailman_round(args, Path(work))


def _mailman_round(args: argparse.Namespace, work: Path) -> int:
    import cProfile
    import email
    import pstats

    from mailman.app.lifecycle import create_list
    from mailman.config import config
    from mailman.core.initialize import initialize
    from mailman.email.message import Message
    from mailman.interfaces.action import Action
    from mailman.interfaces.domain import IDomainManager
    from mailman.interfaces.mailinglist import Personalization
    from mailman.interfaces.usermanager import IUserManager
    from mailman.runners.incoming import IncomingRunner
    from mailman.runners.outgoing import OutgoingRunner
    from mailman.runners.pipeline import PipelineRunner
    from mailman.utilities.datetime import now
    from mailman.utilities.email import add_message_hash
    from zope.component import getUtility

    personalised = args.mode == "personalised"
    cfg = work / "mailman.cfg"
    cfg.write_text(
        MAILMAN_CFG.format(
            var=work / "var",
            port=args.sink_port,
            verp="yes" if personalised else "no",
            interval=1 if personalised else 0,
        )
    )
    started = time.time()
    initialize(str(cfg))
    getUtility(IDomainManager).add(DOMAIN)
    mlist = create_list(f"bench@{DOMAIN}")
    mlist.display_name = "Bench"
    mlist.default_nonmember_action = Action.accept  # as fanout.py's non_member_posts
    mlist.send_welcome_message = False
    mlist.personalize = Personalization.individual if personalised else Personalization.none
    users = getUtility(IUserManager)
    for i in range(args.members):
        mlist.subscribe(users.create_address(f"member{i:05d}@example.net"))
    config.db.commit()
    setup_seconds = time.time() - started

    # The posts as Mailman's LMTP runner queues them (runners/lmtp.py, handle_DATA).
    t0, cpu0 = time.time(), time.process_time()
    for n in range(args.posts):
        raw = POST.format(domain=DOMAIN, n=n).encode()
        msg = email.message_from_bytes(raw, Message)
        msg.set_unixfrom("poster@example.net")
        msg.original_size = len(raw)
        add_message_hash(msg)
        msg["X-MailFrom"] = "poster@example.net"
        config.switchboards["in"].enqueue(
            msg,
            dict(listid=mlist.list_id, original_size=len(raw), received_time=now(), to_list=True),
        )
    # Mailman's runners, one pass each: the posting chain, then the pipeline.
    IncomingRunner("in")._one_iteration()
    PipelineRunner("pipeline")._one_iteration()
    pipeline_seconds, pipeline_cpu = time.time() - t0, time.process_time() - cpu0
    queued = len(config.switchboards["out"].files)

    deadline = time.monotonic() + args.timeout

    class BoundedOutgoingRunner(OutgoingRunner):
        # The runner's own hook for stopping between queue entries (its tests use it).
        def _short_circuit(self) -> bool:
            return time.monotonic() > deadline

    runner = BoundedOutgoingRunner("out")
    profiler = cProfile.Profile() if args.profile else None
    first_call, cpu0 = time.time(), time.process_time()
    if profiler:
        profiler.enable()
    runner._one_iteration()
    if profiler:
        profiler.disable()
    returned, out_cpu = time.time(), time.process_time() - cpu0
    print(
        json.dumps(
            {
                "first_call": first_call,
                "returned": returned,
                "queued": queued,
                "left": len(config.switchboards["out"].files),
                "retry": len(config.switchboards["retry"].files),
                "shunt": len(config.switchboards["shunt"].files),
                "setup_seconds": setup_seconds,
                "pipeline_seconds": pipeline_seconds,
                "pipeline_cpu": pipeline_cpu,
                "out_cpu": out_cpu,
                "versions": versions(),
            }
        ),
        flush=True,
    )
    if profiler:
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(10)
        # The same time by Mailman's own functions (what a delivery asks of the database,
        # the templates and the configuration).
        stats.sort_stats("cumulative").print_stats(
            r"site-packages/mailman/(mta|handlers|model|config|archiving|utilities)/", 14
        )
    return 0


# --- mailhub's side: fanout.py on our venv, with the same post ----------------------------


def mailhub_round(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(HERE))
    import fanout

    fanout.POST = POST  # the same post as Mailman's; fanout.py measures as it always does
    sys.argv = [
        "fanout.py",
        *("--members", str(args.members), "--posts", str(args.posts)),
        *("--mode", args.mode, "--timeout", str(args.timeout)),
    ]
    cpu0 = time.process_time()
    status = fanout.main()
    # The whole process: service start, members, intake, processing and delivery.
    print(f"cpu_seconds: {time.process_time() - cpu0:.3f}")
    return status


# --- the orchestrator: our venv -----------------------------------------------------------


def ensure_mailman() -> Path:
    """Mailman's python, installing Mailman core into its own venv the first time."""
    python = MAILMAN_VENV / "bin" / "python"
    probe = [str(python), "-c", "import mailman.mta.deliver"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"installing mailman=={MAILMAN_VERSION} into {MAILMAN_VENV} ...", flush=True)
    MAILMAN_VENV.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(MAILMAN_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", f"mailman=={MAILMAN_VERSION}"]
    subprocess.run(pip, check=True)
    subprocess.run(probe, check=True)
    return python


def run_child(cmd: list[str], timeout: float) -> tuple[str, bool]:
    """A child's output, and whether it finished within the timeout (else it is killed)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        finished = True
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        finished = False
    if proc.returncode not in (0, None) and finished:
        raise RuntimeError(f"{cmd[:4]} failed ({proc.returncode}):\n{err[-3000:]}")
    return out, finished


class Sink:
    """fanout.py's lean SMTP sink in a child process, counting recipients of completed
    DATA and the time of the last one."""

    def __init__(self) -> None:
        sys.path.insert(0, str(HERE))
        from fanout import run_sink

        ctx = mp.get_context("spawn")
        self.count, self.last = ctx.Value("q", 0), ctx.Value("d", 0.0)
        receiver, sender = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=run_sink, args=(sender, self.count, self.last))
        self.process.daemon = True
        self.process.start()
        self.port = receiver.recv()

    def reset(self) -> None:
        with self.count.get_lock():
            self.count.value = 0
        self.last.value = 0.0

    def stop(self) -> None:
        self.process.terminate()
        self.process.join()


def mailman_measure(
    python: Path, sink: Sink, mode: str, members: int, posts: int, timeout: float, profile: bool
) -> dict:
    sink.reset()
    cmd = [str(python), str(Path(__file__).resolve()), "--role", "mailman", "--mode", mode]
    cmd += ["--members", str(members), "--posts", str(posts), "--timeout", str(timeout)]
    cmd += ["--sink-port", str(sink.port)] + (["--profile"] if profile else [])
    # The child's own bound covers its outgoing runner; this one also its setup (members
    # through the API, ~10-20 s) and the chain and pipeline (~1 s a post).
    out, finished = run_child(cmd, timeout + 60 + 3 * posts)
    first, _, extra = out.partition("\n")
    report = json.loads(first)
    delivered, expected = sink.count.value, members * posts
    seconds = max(1e-9, sink.last.value - report["first_call"])
    return {
        "delivered": delivered,
        "expected": expected,
        "seconds": seconds,
        "rate": delivered / seconds,
        "complete": finished and delivered >= expected and not report["left"],
        "cpu_us": 1e6 * report["out_cpu"] / max(1, delivered),
        # Mailman's runners are separate processes, so at best its chain + pipeline
        # overlaps its outgoing runner: the slower of the two bounds the sustained rate.
        "staged_rate": delivered / max(seconds, report["pipeline_seconds"]),
        "pipeline_cpu_ms": 1e3 * report["pipeline_cpu"] / posts,
        "report": report,
        "extra": extra,
    }


FANOUT_LINE = re.compile(
    r"^\s*(\w+): ([\d,]+) of ([\d,]+) deliveries in ([\d.]+) s = ([\d,]+) deliveries/s(.*)$",
    re.M,
)


def mailhub_measure(mode: str, members: int, posts: int, timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", "mailhub", "--mode", mode]
    cmd += ["--members", str(members), "--posts", str(posts), "--timeout", str(timeout)]
    out, finished = run_child(cmd, timeout + 60)
    match = FANOUT_LINE.search(out)
    cpu = re.search(r"^cpu_seconds: ([\d.]+)$", out, re.M)
    if match is None or cpu is None:
        raise RuntimeError(f"no figures in fanout.py's output:\n{out[-2000:]}")
    delivered, expected = (int(match[i].replace(",", "")) for i in (2, 3))
    seconds = float(match[4])
    return {
        "delivered": delivered,
        "expected": expected,
        "seconds": seconds,
        "rate": delivered / seconds,
        "complete": finished and "INCOMPLETE" not in match[6],
        "cpu_us": 1e6 * float(cpu[1]) / max(1, delivered),
    }


def line(who: str, mode: str, r: dict) -> str:
    flag = "" if r["complete"] else "  (INCOMPLETE)"
    return (
        f"  {who:<8} {mode:<12} {r['delivered']:>9,} of {r['expected']:>9,} in "
        f"{r['seconds']:6.2f} s = {r['rate']:>7,.0f}/s, {r['cpu_us']:6,.0f} us CPU each{flag}"
    )


def span(values: list[float], fmt: str = ",.0f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def summarise(mode: str, pairs: list[tuple[dict, dict]]) -> None:
    target = {"bulk": 25, "personalised": 3}[mode]
    ratios = [hub["rate"] / mm["rate"] for mm, hub in pairs]
    staged = [hub["rate"] / mm["staged_rate"] for mm, hub in pairs]
    cpu = [mm["cpu_us"] / hub["cpu_us"] for mm, hub in pairs]
    print(f"  {mode} (target: mailhub >= {target}x Mailman)")
    print(f"    Mailman outgoing runner:   {span([mm['rate'] for mm, _ in pairs])} deliveries/s")
    print(f"    mailhub (fanout.py):       {span([hub['rate'] for _, hub in pairs])} deliveries/s")
    print(
        f"    ratio, median of rounds:   {statistics.median(ratios):.1f}x"
        f"  (rounds {', '.join(f'{x:.1f}' for x in ratios)})"
    )
    print(
        f"    CPU per delivery:          Mailman {span([mm['cpu_us'] for mm, _ in pairs])} us"
        f" (outgoing runner), mailhub {span([hub['cpu_us'] for _, hub in pairs])} us"
        f" (whole process): {statistics.median(cpu):.1f}x"
    )
    print(
        f"    Mailman with its chain + pipeline overlapped (the slower stage):"
        f" {span([mm['staged_rate'] for mm, _ in pairs])}/s, ratio {statistics.median(staged):.1f}x;"
        f" chain + pipeline {span([mm['pipeline_cpu_ms'] for mm, _ in pairs])} ms CPU a post"
    )
    if not all(mm["complete"] and hub["complete"] for mm, hub in pairs):
        print("    some rounds were INCOMPLETE: raise --timeout or lower the posts")


def orchestrate(args: argparse.Namespace) -> int:
    python = ensure_mailman()
    sink = Sink()
    posts = {"bulk": args.bulk_posts, "personalised": args.personalised_posts}
    modes = MODES if args.mode == "both" else (args.mode,)
    results: dict[str, list[tuple[dict, dict]]] = {mode: [] for mode in modes}
    try:
        if args.profile:
            mm = mailman_measure(
                python, sink, "personalised", args.members, posts["personalised"][0],
                args.timeout, profile=True,
            )  # fmt: skip
            print(line("Mailman", "personalised", mm) + "  (under cProfile)")
            print(mm["extra"])
            return 0
        print(
            f"{args.members:,} members; posts per round (Mailman, mailhub): "
            + "; ".join(f"{m} {posts[m][0]}, {posts[m][1]}" for m in modes),
            flush=True,
        )
        for n in range(1, args.rounds + 1):
            print(f"round {n}", flush=True)
            for mode in modes:
                mm = mailman_measure(
                    python, sink, mode, args.members, posts[mode][0], args.timeout, False
                )
                if n == 1 and mode == modes[0]:
                    print(f"  ({mm['report']['versions']})")
                print(
                    line("Mailman", mode, mm)
                    + f"; chain + pipeline {mm['pipeline_cpu_ms']:,.0f} ms CPU a post",
                    flush=True,
                )
                hub = mailhub_measure(mode, args.members, posts[mode][1], args.timeout)
                print(
                    line("mailhub", mode, hub) + f"  = {hub['rate'] / mm['rate']:.1f}x", flush=True
                )
                results[mode].append((mm, hub))
    finally:
        sink.stop()
    print("\nsummary: medians (and ranges) of the rounds; ratios are mailhub / Mailman per round")
    for mode, pairs in results.items():
        summarise(mode, pairs)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--mode", choices=["both", *MODES], default="both")
    parser.add_argument(
        "--bulk-posts", type=int, nargs=2, default=[80, 600], metavar=("MAILMAN", "MAILHUB")
    )
    parser.add_argument(
        "--personalised-posts", type=int, nargs=2, default=[1, 40], metavar=("MAILMAN", "MAILHUB")
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per delivery run, seconds")
    parser.add_argument("--profile", action="store_true", help="cProfile Mailman personalised")
    # The children's roles.
    parser.add_argument("--role", choices=["mailman", "mailhub"], help=argparse.SUPPRESS)
    parser.add_argument("--posts", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sink-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "mailman":
        return mailman_round(args)
    if args.role == "mailhub":
        return mailhub_round(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
