"""`mailhub dkim keygen DOMAIN [--selector S] [--dir DIR]`: a new signing key, and what to
publish in DNS and write in the config to use it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailhub.config import Config
from mailhub.signing import DEFAULT_SELECTOR, keygen, txt_record


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dkim", help="DKIM signing keys")
    actions = p.add_subparsers(dest="dkim_action", required=True)
    k = actions.add_parser(
        "keygen",
        parents=[common],
        help="write a new RSA-2048 key and print its DNS record",
    )
    k.add_argument("domain", help="the domain to sign for, e.g. cop.example.org")
    k.add_argument(
        "--selector",
        default=DEFAULT_SELECTOR,
        help=f"the DNS selector (default {DEFAULT_SELECTOR})",
    )
    k.add_argument(
        "--dir",
        type=Path,
        help="where to write the key (default: dkim/ beside the database, e.g. var/dkim/)",
    )
    k.set_defaults(func=cmd_keygen)


def key_directory(config: Config) -> Path:
    """Keys live beside the database by default (var/dkim/): both are the service's state."""
    return config.storage.path.parent / "dkim"


async def cmd_keygen(args: argparse.Namespace, config: Config) -> int:
    directory = args.dir if args.dir is not None else key_directory(config)
    path, record = keygen(args.domain, args.selector, directory)
    domain = args.domain.lower()
    # An absolute path: it reads the same whichever folder relative paths resolve against.
    key_file = str(path.resolve())
    print(f"wrote {key_file} (RSA 2048, readable by its owner only)")
    print()
    print("1. publish this DNS record in the domain's zone:")
    print()
    print(f"   {record}")
    others = [d for d in config.server.domains[1:] if d.lower() != domain]
    if domain == config.server.domain and others:
        # The [dkim] key signs for every one of the service's domains.
        print()
        print("   and the same key for the service's other domains ([dkim] signs for them all):")
        public = _public_key(path)
        for other in others:
            print()
            print(f"   {txt_record(other.lower(), args.selector, public)}")
    print()
    print(f"2. add to {config.source or 'the config'}:")
    print()
    if domain == config.server.domain:
        print("   [dkim]")
    else:
        print("   [[dkim.keys]]")
        print(f"   domain = {_toml(domain)}")
    print(f"   selector = {_toml(args.selector)}")
    print(f"   key_file = {_toml(key_file)}")
    print()
    if domain not in (d.lower() for d in config.server.domains):
        print(f"   note: {domain} is not one of server.domains, so nothing is signed with it yet")
        print()
    print("3. once the record is published, restart mailhub: its mail is signed from then on")
    return 0


def _toml(text: str) -> str:
    # A TOML basic string: JSON's escapes are TOML's (a path may hold a quote or backslash).
    return json.dumps(text)


def _public_key(path: Path) -> rsa.RSAPublicKey:
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)  # keygen just wrote it
    return private.public_key()
