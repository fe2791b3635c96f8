"""Hosts of the test's own: Linux network namespaces joined by veth pairs to one bridge, made and removed here.

Every name starts with a prefix carrying this process's id, and every address is in one /24 that exists only
inside these namespaces: the bridge lives in a namespace of its own, so nothing is added to the machine's own
network, and no packet of the test can leave the namespaces it made. `Network.remove()` deletes them all; it runs
from the fixtures' `finally`, and from an atexit and SIGTERM guard for a run that is interrupted.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"
_libc = ctypes.CDLL(None, use_errno=True)


def missing_tools() -> str | None:
    """Why this machine cannot make hosts of its own, or None."""
    if os.geteuid() != 0:
        return "the multi-host suite needs root (network namespaces)"
    for tool in ("ip", "iptables", "haproxy", "runuser"):
        if shutil.which(tool) is None:
            return f"the multi-host suite needs `{tool}`"
    return None


def ip(*args: str, namespace: str | None = None) -> None:
    command = ["ip", *args] if namespace is None else ["ip", "-n", namespace, *args]
    subprocess.run(command, check=True, capture_output=True, timeout=20)


def in_namespace(namespace: str) -> list[str]:
    """The prefix that runs a command inside a host."""
    return ["ip", "netns", "exec", namespace]


def enter(namespace: str) -> None:
    """Moves the calling thread (only it, and the threads and processes it starts) into a host's network."""
    fd = os.open(os.path.join(NETNS_DIR, namespace), os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into {namespace}: {os.strerror(error)}")
    finally:
        os.close(fd)


def run_in(namespace: str, function: Callable[[], T], timeout: float = 60) -> T:
    """Calls `function` on a thread of its own inside a host's network, and returns (or raises) what it did."""
    outcome: dict[str, object] = {}

    def body() -> None:
        try:
            enter(namespace)
            outcome["value"] = function()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=body, name=f"in-{namespace}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{function!r} in {namespace} did not return within {timeout} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


@dataclass
class Host:
    name: str
    namespace: str
    address: str


@dataclass
class Network:
    """One /24 on a bridge in its own namespace; `add(name)` makes a host with one address on it."""

    prefix: str = field(default_factory=lambda: f"gkh{os.getpid()}")
    # 10.213.<pid>.0/24: any private /24 does, since it exists only inside these namespaces; the pid's low byte
    # keeps two runs' captures apart when someone reads them.
    subnet: str = field(default_factory=lambda: f"10.213.{os.getpid() % 250}")
    hosts: dict[str, Host] = field(default_factory=dict)
    _made: list[str] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"{self.prefix}-switch"

    def create(self) -> None:
        remove_abandoned()
        _guard(self)
        self._namespace(self.switch)
        ip("link", "add", "br0", "type", "bridge", namespace=self.switch)
        ip("link", "set", "br0", "up", namespace=self.switch)

    def add(self, name: str, number: int, *, reaches: list[str] | None = None) -> Host:
        """A host at <subnet>.<number>; with `reaches`, it has routes to those hosts only (the client)."""
        namespace = f"{self.prefix}-{name}"
        self._namespace(namespace)
        # Both ends are made inside their namespaces: no interface ever appears in the machine's own network.
        port = f"p{number}"
        ip("link", "add", "eth0", "netns", namespace, "type", "veth", "peer", "name", port, "netns", self.switch)
        ip("link", "set", port, "master", "br0", "up", namespace=self.switch)
        address = f"{self.subnet}.{number}"
        if reaches is None:
            ip("addr", "add", f"{address}/24", "dev", "eth0", namespace=namespace)
        else:
            ip("addr", "add", f"{address}/32", "dev", "eth0", namespace=namespace)
        ip("link", "set", "eth0", "up", namespace=namespace)
        for other in reaches or []:
            ip("route", "add", f"{self.hosts[other].address}/32", "dev", "eth0", namespace=namespace)
        host = Host(name, namespace, address)
        self.hosts[name] = host
        return host

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def cut(self, host: str, peer: str, *, local_port: int | None = None) -> None:
        """Drops (does not refuse) every packet between two hosts, inside the first one; with `local_port`, also
        the host's own loopback traffic to and from that port (a relay standing in for the peer there)."""
        for rule in self._rules(peer, local_port):
            self._iptables(host, "-A", rule)

    def heal(self, host: str, peer: str, *, local_port: int | None = None) -> None:
        for rule in self._rules(peer, local_port):
            self._iptables(host, "-D", rule)

    def _rules(self, peer: str, local_port: int | None) -> list[list[str]]:
        address = self.hosts[peer].address
        rules = [["OUTPUT", "-d", address], ["INPUT", "-s", address]]
        if local_port is not None:
            rules += [["OUTPUT", "-o", "lo", "-p", "tcp", "--dport", str(local_port)],
                      ["OUTPUT", "-o", "lo", "-p", "tcp", "--sport", str(local_port)]]
        return rules

    def _iptables(self, host: str, action: str, rule: list[str]) -> None:
        subprocess.run([*in_namespace(self.hosts[host].namespace), "iptables", action, *rule, "-j", "DROP"],
                       check=True, capture_output=True, timeout=20)

    def _namespace(self, namespace: str) -> None:
        ip("netns", "add", namespace)
        self._made.append(namespace)
        ip("link", "set", "lo", "up", namespace=namespace)

    def remove(self) -> None:
        """Deletes every namespace made (with its interfaces, routes and rules); the processes left in one are
        killed first, so nothing keeps it alive."""
        for namespace in reversed(self._made):
            pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True,
                                  timeout=20).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, timeout=20)
        self._made.clear()
        _guarded.discard(self)

    def __hash__(self) -> int:
        return id(self)


_guarded: set[Network] = set()


def remove_abandoned() -> None:
    """Deletes the namespaces of earlier runs whose process is gone (killed -9: no guard could run)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=20).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        owner = re.fullmatch(r"gkh(\d+)-[a-z0-9]+", name)
        if owner and not os.path.exists(f"/proc/{owner.group(1)}"):
            Network(prefix=f"gkh{owner.group(1)}", _made=[name]).remove()


def _remove_all() -> None:
    for network in list(_guarded):
        network.remove()


def _on_sigterm(signum: int, frame: object) -> None:
    _remove_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _guard(network: Network) -> None:
    if not _guarded:
        atexit.register(_remove_all)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _on_sigterm)
    _guarded.add(network)
