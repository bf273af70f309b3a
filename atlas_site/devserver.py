"""Where the development server listens, and what a run reachable from other machines may use.

`bin/run` serves Atlas with Django's development server and `atlas_site.settings.local`,
whose defaults are for one workstation: DEBUG on (its error pages show settings, the
environment, database and broker URLs, every URL pattern) and development keys that are
written in this repository (SECRET_KEY, ATLAS_ENCRYPTION_KEYS, ATLAS_HASH_KEY), so anyone
can read them. Those defaults are safe only while nobody else can reach the server.

- The server listens on 127.0.0.1 unless `ATLAS_BIND` names another address.
- Bound to an address other machines can reach (anything but loopback), the local
  settings refuse to start on the repository's development keys: SECRET_KEY,
  ATLAS_ENCRYPTION_KEYS and ATLAS_HASH_KEY must come from the environment. DEBUG is off
  there unless `ATLAS_ALLOW_NETWORK_DEBUG=true` says, knowingly, to show debug pages to
  the network (DEBUG=true alone is refused).

The settings learn the address from `ATLAS_BIND` (bin/run exports it to everything it
starts) or, for `manage.py runserver ADDR:PORT` typed by hand, from that argument.

Only the standard library: bin/run runs this file before Django is set up.

    python atlas_site/devserver.py
        prints the host to listen on (stdout); on a non-loopback address a warning (stderr);
        exits 2 with the reason when the address or the environment is refused.
"""

import ipaddress
import os
import re
import sys
from collections.abc import Mapping, Sequence

DEFAULT_BIND = "127.0.0.1"
# The variables whose development defaults (settings/local.py) a network run may not use.
SECRETS = ("SECRET_KEY", "ATLAS_ENCRYPTION_KEYS", "ATLAS_HASH_KEY")
TRUE = {"1", "true", "yes", "on"}
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
# Options of `manage.py runserver` that take a value (the next argument is not ADDR:PORT).
_VALUE_OPTIONS = {"--settings", "--pythonpath", "-v", "--verbosity"}


class BindError(ValueError):
    """The address or the environment cannot be used for the development server."""


def _value(environ: Mapping[str, str], name: str) -> str:
    return (environ.get(name) or "").strip()


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return _value(environ, name).lower() in TRUE


def normalise_host(host: str) -> str:
    """A host runserver understands: an IPv4 or IPv6 address (no brackets) or a host name."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "0":  # runserver's shorthand for every IPv4 address
        return "0.0.0.0"  # noqa: S104  (judged by is_loopback, never listened on here)
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if _HOSTNAME.match(host):
        return host.lower()
    raise BindError(f"ATLAS_BIND={host!r} is not an IP address or a host name")


def is_loopback(host: str) -> bool:
    """Only this machine can connect: 127.0.0.0/8, ::1 or `localhost`.

    A host name other than localhost may resolve to anything, so it counts as reachable.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_host(environ: Mapping[str, str]) -> str:
    """The address bin/run's web server listens on: ATLAS_BIND, by default 127.0.0.1."""
    return normalise_host(_value(environ, "ATLAS_BIND") or DEFAULT_BIND)


def runserver_host(argv: Sequence[str]) -> str | None:
    """The address of `manage.py runserver [options] [ADDR:]PORT`, or None for other commands.

    runserver listens on 127.0.0.1 by default (::1 with -6/--ipv6).
    """
    if "runserver" not in argv[1:3]:
        return None
    arguments = list(argv[argv.index("runserver") + 1 :])
    ipv6 = "-6" in arguments or "--ipv6" in arguments
    positional, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument in _VALUE_OPTIONS:
            skip = True
        elif not argument.startswith("-"):
            positional.append(argument)
    addrport = positional[0] if positional else ""
    if addrport.startswith("["):  # [::]:8000
        host = addrport[1 : addrport.find("]")] if "]" in addrport else addrport
    elif addrport.count(":") == 1:  # 0.0.0.0:8000, localhost:8000
        host = addrport.split(":")[0]
    elif addrport.count(":") > 1:  # a bare IPv6 address
        host = addrport
    else:  # a port alone, or nothing
        host = ""
    return normalise_host(host or ("::1" if ipv6 else DEFAULT_BIND))


def listening_host(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """Where this process's development server listens (or the one it serves beside)."""
    return runserver_host(argv) or bind_host(environ)


def debug_default(host: str) -> bool:
    """DEBUG's default under local settings: on for loopback only."""
    return is_loopback(host)


def refusal(host: str, environ: Mapping[str, str]) -> str | None:
    """Why local settings may not run reachable at `host` with this environment, or None."""
    if is_loopback(host):
        return None
    problems = []
    missing = [name for name in SECRETS if not _value(environ, name)]
    if missing:
        problems.append(
            "set " + ", ".join(missing) + " of your own (the development defaults are "
            "written in the repository, so anyone can read them). Generate them with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))' and "
            'python -c \'import base64, os; print("k1:" + base64.b64encode(os.urandom(32))'
            ".decode())'"
        )
    if _flag(environ, "DEBUG") and not _flag(environ, "ATLAS_ALLOW_NETWORK_DEBUG"):
        problems.append(
            "DEBUG=true would show settings, environment and URL patterns to anyone who can "
            "reach it: unset DEBUG, or also set ATLAS_ALLOW_NETWORK_DEBUG=true if you mean it"
        )
    if not problems:
        return None
    return (
        f"The development server would listen on {host}, which other machines can reach: "
        + "; ".join(problems)
        + ". Or leave ATLAS_BIND unset to listen on 127.0.0.1 only."
    )


def check(host: str, environ: Mapping[str, str]) -> None:
    """Raise BindError with the reason when local settings may not run at `host`."""
    reason = refusal(host, environ)
    if reason:
        raise BindError(reason)


def warning(host: str, environ: Mapping[str, str]) -> str | None:
    """What bin/run says before listening on an address other machines can reach."""
    if is_loopback(host):
        return None
    debug = _flag(environ, "DEBUG") and _flag(environ, "ATLAS_ALLOW_NETWORK_DEBUG")
    return (
        f"WARNING: the development server will listen on {host}: other machines can reach "
        "Atlas (runserver is not hardened for that; use docker compose or gunicorn with "
        "production settings for anything shared). Add the host name they use to "
        "ALLOWED_HOSTS."
        + (" DEBUG is ON: error pages show settings and environment." if debug else "")
    )


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    try:
        host = bind_host(environ)
        check(host, environ)
    except BindError as error:
        print(f"==> {error}", file=sys.stderr)
        return 2
    message = warning(host, environ)
    if message:
        print(f"==> {message}", file=sys.stderr)
    print(host)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv, os.environ))
