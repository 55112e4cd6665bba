#!/usr/bin/python3
"""Probe the behaviour of the real Qt 6 QTcpServer (via PyQt6).

tcpactor reimplements QTcpServer as Proto.Actor actors; this script records
what the reference implementation actually does so the Go port can match it.
The findings are summarised in docs/qt-behaviour.md.

Usage (Debian's python, which has python3-pyqt6; not a pyenv python):

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/qt/probe_qtcpserver.py

Optionally pass section numbers to run only those, e.g. ``... 2 8 13``.

Rules this probe follows:
  * all traffic is loopback only (127.0.0.1 / ::1); 192.0.2.1 (TEST-NET-1) is
    only ever passed to bind(), never connected to;
  * every wait is bounded (see pump());
  * each section is wrapped in try/except so one failure does not stop the
    others;
  * things that crash Qt (pause/resumeAccepting without a socket engine) or
    that change process-wide state (RLIMIT_NOFILE) run in a child process
    (``--child NAME``) so the probe survives and reports the exit status.
"""

import os
import resource
import signal
import socket
import subprocess
import sys
import time
import traceback

from PyQt6 import sip
from PyQt6.QtCore import QCoreApplication, QEventLoop, QT_VERSION_STR, PYQT_VERSION_STR
from PyQt6.QtNetwork import (
    QAbstractSocket,
    QHostAddress,
    QNetworkProxy,
    QTcpServer,
    QTcpSocket,
)

SA = QHostAddress.SpecialAddress
SE = QAbstractSocket.SocketError
PT = QNetworkProxy.ProxyType

app = QCoreApplication.instance() or QCoreApplication(sys.argv)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def out(key, value):
    """Print one finding as 'key = value' (repr so empty strings are visible)."""
    print(f"  {key} = {value!r}" if isinstance(value, str) else f"  {key} = {value}")
    sys.stdout.flush()


def section(title):
    print(f"\n=== {title} ===")
    sys.stdout.flush()


def pump(ms=300, until=None):
    """Run the Qt event loop for at most `ms` milliseconds.

    Stops early when `until()` becomes true. Returns elapsed ms.
    """
    start = time.monotonic()
    deadline = start + ms / 1000.0
    while time.monotonic() < deadline:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        if until is not None and until():
            break
        time.sleep(0.005)
    return round((time.monotonic() - start) * 1000)


def fd_of(server):
    """socketDescriptor() is a sip.voidptr in PyQt6; convert to signed int."""
    v = int(server.socketDescriptor())
    return v - (1 << 64) if v >= (1 << 63) else v


def err(server):
    """(numeric serverError, enum name, errorString)."""
    e = server.serverError()
    return (e.value, e.name, server.errorString())


def addr(server):
    a = server.serverAddress()
    return f"{a.toString()!r} isNull={a.isNull()} protocol={a.protocol().name}"


def client(host, port, timeout=1.0):
    """Blocking loopback TCP connect. Returns the socket, or the exception.

    The kernel completes the handshake from the listen backlog, so this does
    not need the Qt event loop to run.
    """
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        return s
    except OSError as e:
        s.close()
        return e


def peer_state(s, timeout=0.5):
    """What does a client socket see? 'EOF', 'RST', 'open (timeout)', or data."""
    s.settimeout(timeout)
    try:
        d = s.recv(100)
        return "EOF" if d == b"" else f"data {d!r}"
    except ConnectionResetError:
        return "RST (ConnectionResetError)"
    except socket.timeout:
        return "open (recv timed out, no EOF)"
    except OSError as e:
        return f"OSError {e}"


def drain(server, ms=300):
    """Let the server accept for `ms`, then claim everything pending."""
    pump(ms)
    got = []
    while True:
        s = server.nextPendingConnection()
        if s is None:
            break
        got.append(s)
    return got


def new_server():
    srv = QTcpServer()
    srv.new_conn_count = 0
    srv.newConnection.connect(lambda: setattr(srv, "new_conn_count", srv.new_conn_count + 1))
    return srv


def run_child(name, timeout=30):
    """Run this script as `--child name`; return (returncode, stdout, stderr)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", name],
                       capture_output=True, text=True, timeout=timeout, env=env)
    rc = p.returncode
    if rc < 0:
        rc = f"{rc} (killed by {signal.Signals(-rc).name})"
    return rc, p.stdout.strip(), p.stderr.strip()


# --------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------

def q1():
    section("Q1 fresh QTcpServer")
    s = QTcpServer()
    out("isListening()", s.isListening())
    out("serverAddress()", addr(s))
    out("serverPort()", s.serverPort())
    out("serverError()", err(s)[:2])
    out("errorString()", s.errorString())
    out("maxPendingConnections()", s.maxPendingConnections())
    out("socketDescriptor()", fd_of(s))
    out("proxy().type()", (s.proxy().type().value, s.proxy().type().name))
    out("listenBacklogSize()", s.listenBacklogSize())
    out("hasPendingConnections()", s.hasPendingConnections())


def q2():
    section("Q2 listen() on special / explicit addresses, port 0")
    cases = [
        ("Any", QHostAddress(SA.Any)),
        ("AnyIPv4", QHostAddress(SA.AnyIPv4)),
        ("AnyIPv6", QHostAddress(SA.AnyIPv6)),
        ("LocalHost", QHostAddress(SA.LocalHost)),
        ("LocalHostIPv6", QHostAddress(SA.LocalHostIPv6)),
        ('QHostAddress("127.0.0.1")', QHostAddress("127.0.0.1")),
        ('QHostAddress("::1")', QHostAddress("::1")),
    ]
    for name, a in cases:
        try:
            s = new_server()
            ok = s.listen(a, 0)
            port = s.serverPort()
            print(f" -- listen({name}, 0)")
            out("listen() returned", ok)
            out("serverAddress()", addr(s))
            out("serverPort() nonzero", port != 0)
            res = {}
            for host in ("127.0.0.1", "::1"):
                c = client(host, port)
                res[host] = "connect ok" if isinstance(c, socket.socket) else f"connect failed: {c}"
                if isinstance(c, socket.socket):
                    got = drain(s, 300)
                    res[host] += f"; Qt accepted {len(got)}"
                    if got:
                        res[host] += f"; peerAddress={got[0].peerAddress().toString()!r}" \
                                     f" localAddress={got[0].localAddress().toString()!r}"
                    c.close()
            for h, r in res.items():
                out(f"client {h}", r)
            out("newConnection emitted", s.new_conn_count)
            s.close()
        except Exception:
            traceback.print_exc()


def q3():
    section("Q3 listen() twice")
    s = QTcpServer()
    out("first listen(LocalHost,0)", s.listen(QHostAddress(SA.LocalHost), 0))
    port = s.serverPort()
    out("second listen(LocalHost,0)", s.listen(QHostAddress(SA.LocalHost), 0))
    out("serverError after", err(s))
    out("still listening / same port", (s.isListening(), s.serverPort() == port))
    out("third listen(AnyIPv4, 0) (different address)", s.listen(QHostAddress(SA.AnyIPv4), 0))
    out("serverError after", err(s))
    s.close()


def q4():
    section("Q4 listen on a port already in use")
    # (a) another socket bound AND listening on 127.0.0.1:port
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    s = QTcpServer()
    out("(a) other socket listening; listen(127.0.0.1, port)", s.listen(QHostAddress("127.0.0.1"), port))
    out("(a) serverError", err(s))
    out("(a) isListening / serverPort", (s.isListening(), s.serverPort()))
    # same port, wildcard address
    s2 = QTcpServer()
    out("(a) listen(AnyIPv4, port)", s2.listen(QHostAddress(SA.AnyIPv4), port))
    out("(a) serverError", err(s2))
    s3 = QTcpServer()
    out("(a) listen(Any, port)", s3.listen(QHostAddress(SA.Any), port))
    out("(a) serverError", err(s3))
    blocker.close()
    # (b) other socket only bound (not listening), no SO_REUSEADDR
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    port = blocker.getsockname()[1]
    s4 = QTcpServer()
    out("(b) other socket bound-not-listening; listen(127.0.0.1, port)",
        s4.listen(QHostAddress("127.0.0.1"), port))
    out("(b) serverError", err(s4))
    blocker.close()
    # (c) another QTcpServer on same port
    a = QTcpServer()
    a.listen(QHostAddress(SA.LocalHost), 0)
    b = QTcpServer()
    out("(c) second QTcpServer on same LocalHost port", b.listen(QHostAddress(SA.LocalHost), a.serverPort()))
    out("(c) serverError", err(b))
    a.close()
    # error is sticky? does a successful listen() reset serverError?
    out("(c) after retry with port 0: listen", b.listen(QHostAddress(SA.LocalHost), 0))
    out("(c) serverError after successful listen", err(b))
    b.close()
    out("(c) serverError after close()", err(b))


def q5():
    section("Q5 listen on non-local / null / malformed address")
    s = QTcpServer()
    out("listen(192.0.2.1, 0)", s.listen(QHostAddress("192.0.2.1"), 0))
    out("serverError", err(s))
    out("isListening / serverAddress", (s.isListening(), addr(s)))
    s = QTcpServer()
    out("listen(QHostAddress(\"2001:db8::1\"), 0)", s.listen(QHostAddress("2001:db8::1"), 0))
    out("serverError", err(s))
    for name, a in (("QHostAddress()", QHostAddress()),
                    ("QHostAddress('not-an-ip')", QHostAddress("not-an-ip")),
                    ("QHostAddress(SpecialAddress.Null)", QHostAddress(SA.Null))):
        s = QTcpServer()
        out(f"{name}.isNull()", a.isNull())
        ok = s.listen(a, 0)
        out(f"listen({name}, 0)", ok)
        out("serverError", err(s))
        out("isListening / serverAddress / port",
            (s.isListening(), addr(s), s.serverPort()))
        if ok:
            for host in ("127.0.0.1", "::1"):
                c = client(host, s.serverPort())
                out(f"  client {host}", "ok" if isinstance(c, socket.socket) else str(c))
                if isinstance(c, socket.socket):
                    c.close()
        s.close()
    s = QTcpServer()
    out("listen() with default args (address=Any, port=0)", s.listen())
    out("serverAddress", addr(s))
    s.close()


def q6():
    section("Q6 close()")
    s = new_server()
    s.listen(QHostAddress(SA.LocalHost), 0)
    port = s.serverPort()
    claimed_client = client("127.0.0.1", port)
    claimed = drain(s, 300)
    out("claimed before close", len(claimed))
    unclaimed_client = client("127.0.0.1", port)
    pump(300, until=s.hasPendingConnections)
    out("unclaimed pending before close (hasPendingConnections)", s.hasPendingConnections())
    # a third client that the kernel accepted but Qt has not yet (accepting paused)
    s.pauseAccepting()
    backlog_client = client("127.0.0.1", port)
    pump(200)
    s.close()
    out("isListening after close", s.isListening())
    out("serverAddress after close", addr(s))
    out("serverPort after close", s.serverPort())
    out("socketDescriptor after close", fd_of(s))
    out("serverError after close", err(s))
    out("hasPendingConnections after close", s.hasPendingConnections())
    out("nextPendingConnection after close", s.nextPendingConnection())
    pump(300)  # let deleteLater() of pending sockets run
    out("unclaimed (pending in Qt) client sees", peer_state(unclaimed_client))
    out("backlog (never accepted by Qt) client sees", peer_state(backlog_client))
    out("claimed client sees", peer_state(claimed_client))
    out("claimed QTcpSocket state after close", claimed[0].state().name)
    claimed[0].write(b"hi")
    claimed[0].flush()
    out("claimed socket still usable (client receives write)", peer_state(claimed_client))
    out("connect to old port after close",
        "ok" if isinstance(client("127.0.0.1", port), socket.socket) else "refused")
    out("close() twice (no crash)", (s.close(), s.isListening())[1])
    out("listen again on same port", s.listen(QHostAddress(SA.LocalHost), port))
    out("serverPort after re-listen", s.serverPort() == port)
    c = client("127.0.0.1", port)
    out("accepts after re-listen", len(drain(s, 300)))
    for x in (claimed_client, unclaimed_client, backlog_client, c):
        if isinstance(x, socket.socket):
            x.close()
    s.close()


def q7():
    section("Q7 nextPendingConnection with nothing pending")
    s = new_server()
    out("not listening: hasPendingConnections", s.hasPendingConnections())
    out("not listening: nextPendingConnection", s.nextPendingConnection())
    s.listen(QHostAddress(SA.LocalHost), 0)
    out("listening, nothing pending: hasPendingConnections", s.hasPendingConnections())
    out("listening, nothing pending: nextPendingConnection", s.nextPendingConnection())
    c = client("127.0.0.1", s.serverPort())
    out("before event loop runs: hasPendingConnections", s.hasPendingConnections())
    pump(300, until=s.hasPendingConnections)
    out("after event loop: hasPendingConnections", s.hasPendingConnections())
    sock = s.nextPendingConnection()
    out("nextPendingConnection", type(sock).__name__)
    out("socket parent is server", sock.parent() is s)
    out("after claim: hasPendingConnections", s.hasPendingConnections())
    out("after claim: nextPendingConnection", s.nextPendingConnection())
    c.close()
    s.close()


def q8():
    section("Q8 setMaxPendingConnections")
    s = new_server()
    s.setMaxPendingConnections(1)
    out("maxPendingConnections() after set(1)", s.maxPendingConnections())
    s.listen(QHostAddress(SA.LocalHost), 0)
    port = s.serverPort()
    clients = [client("127.0.0.1", port) for _ in range(3)]
    out("3 client connects at TCP level", [("ok" if isinstance(c, socket.socket) else str(c)) for c in clients])
    pump(500)
    out("newConnection count after 500ms", s.new_conn_count)
    claimed = []
    for i in range(4):
        # count how many are pending right now without running the event loop
        n = 0
        while s.hasPendingConnections() and n < 10:
            x = s.nextPendingConnection()
            claimed.append(x)
            n += 1
        out(f"round {i}: claimed without pumping", n)
        pump(300)
        out(f"round {i}: newConnection total after pump", s.new_conn_count)
    out("total claimed", len(claimed))
    for c in clients:
        if isinstance(c, socket.socket):
            c.close()
    s.close()

    for v in (0, -1):
        s = new_server()
        s.setMaxPendingConnections(v)
        out(f"set({v}) -> maxPendingConnections()", s.maxPendingConnections())
        s.listen(QHostAddress(SA.LocalHost), 0)
        c = client("127.0.0.1", s.serverPort())
        out(f"set({v}): client TCP connect", "ok" if isinstance(c, socket.socket) else str(c))
        pump(500)
        out(f"set({v}): newConnection / hasPending after 500ms",
            (s.new_conn_count, s.hasPendingConnections()))
        out(f"set({v}): nextPendingConnection", s.nextPendingConnection())
        pump(300)
        out(f"set({v}): after nextPendingConnection()+pump newConnection", s.new_conn_count)
        # raise the limit while connections wait in the kernel backlog
        s.setMaxPendingConnections(30)
        pump(500)
        out(f"set({v}) then set(30) without other calls: newConnection", s.new_conn_count)
        s.nextPendingConnection()
        pump(300)
        out(f"... then nextPendingConnection()+pump: newConnection", s.new_conn_count)
        s.resumeAccepting()
        pump(500, until=lambda: s.new_conn_count > 0)
        out(f"... then resumeAccepting()+pump: newConnection", s.new_conn_count)
        if isinstance(c, socket.socket):
            c.close()
        s.close()

    # default limit is 30: connect 35 clients
    s = new_server()
    s.listen(QHostAddress(SA.LocalHost), 0)
    cl = [client("127.0.0.1", s.serverPort()) for _ in range(35)]
    pump(800)
    out("default max (30): 35 clients -> newConnection after pump", s.new_conn_count)
    for c in cl:
        if isinstance(c, socket.socket):
            c.close()
    s.close()


def q9():
    section("Q9 waitForNewConnection")
    s = QTcpServer()
    t = time.monotonic()
    r = s.waitForNewConnection(0)
    out("not listening: waitForNewConnection(0) -> (result, timedOut)", r)
    r = s.waitForNewConnection(100)
    out("not listening: waitForNewConnection(100) -> (result, timedOut), ms",
        (r, round((time.monotonic() - t) * 1000)))
    out("not listening: serverError", err(s))
    s.listen(QHostAddress(SA.LocalHost), 0)
    t = time.monotonic()
    r = s.waitForNewConnection(0)
    out("listening, nothing pending: waitForNewConnection(0)", (r, round((time.monotonic() - t) * 1000)))
    t = time.monotonic()
    r = s.waitForNewConnection(100)
    out("listening, nothing pending: waitForNewConnection(100) (result, timedOut), ms",
        (r, round((time.monotonic() - t) * 1000)))
    out("serverError after timeout", err(s))
    t = time.monotonic()
    r = s.waitForNewConnection()
    out("default arg (msecs=0)", (r, round((time.monotonic() - t) * 1000)))
    c = client("127.0.0.1", s.serverPort())
    t = time.monotonic()
    r = s.waitForNewConnection(1000)
    out("client already connected: waitForNewConnection(1000), ms",
        (r, round((time.monotonic() - t) * 1000)))
    out("hasPendingConnections after", s.hasPendingConnections())
    # with a pending connection and max reached, does wait return immediately?
    s.setMaxPendingConnections(1)
    c2 = client("127.0.0.1", s.serverPort())
    t = time.monotonic()
    r = s.waitForNewConnection(200)
    out("1 pending, max=1, another in backlog: waitForNewConnection(200), ms",
        (r, round((time.monotonic() - t) * 1000)))
    c.close()
    c2.close()
    s.close()
    s = QTcpServer()
    s.setMaxPendingConnections(0)
    s.listen(QHostAddress(SA.LocalHost), 0)
    c = client("127.0.0.1", s.serverPort())
    t = time.monotonic()
    r = s.waitForNewConnection(200)
    out("max=0, client in backlog: waitForNewConnection(200), ms, hasPending",
        (r, round((time.monotonic() - t) * 1000), s.hasPendingConnections()))
    c.close()
    s.close()


def q10():
    section("Q10 pauseAccepting / resumeAccepting")
    s = new_server()
    s.listen(QHostAddress(SA.LocalHost), 0)
    s.pauseAccepting()
    c1 = client("127.0.0.1", s.serverPort())
    out("paused: client TCP connect", "ok" if isinstance(c1, socket.socket) else str(c1))
    pump(500)
    out("paused: newConnection / hasPending after 500ms", (s.new_conn_count, s.hasPendingConnections()))
    out("paused: isListening", s.isListening())
    s.resumeAccepting()
    pump(500, until=s.hasPendingConnections)
    out("after resumeAccepting: newConnection", s.new_conn_count)
    s.nextPendingConnection()
    # does nextPendingConnection() (returning None) lift a pause?
    s.pauseAccepting()
    c2 = client("127.0.0.1", s.serverPort())
    pump(400)
    before = s.new_conn_count
    r = s.nextPendingConnection()
    out("paused, nextPendingConnection() with nothing pending", r)
    pump(500)
    out("paused then nextPendingConnection(): newConnection before -> after pump",
        (before, s.new_conn_count))
    # pause while a connection is pending; does claiming it lift the pause?
    s.resumeAccepting()
    pump(400, until=s.hasPendingConnections)   # c2 now pending in Qt
    s.pauseAccepting()
    c2b = client("127.0.0.1", s.serverPort())
    pump(400)
    before = s.new_conn_count
    out("paused with 1 pending: nextPendingConnection() returns socket",
        s.nextPendingConnection() is not None)
    pump(500)
    out("paused, claimed a pending one: newConnection before -> after pump",
        (before, s.new_conn_count))
    # does waitForNewConnection accept while paused?
    s.nextPendingConnection()
    s.pauseAccepting()
    c3 = client("127.0.0.1", s.serverPort())
    r = s.waitForNewConnection(300)
    out("paused: waitForNewConnection(300) (result,timedOut), hasPending", (r, s.hasPendingConnections()))
    # pause twice / resume twice while listening
    s.pauseAccepting(); s.pauseAccepting(); s.resumeAccepting(); s.resumeAccepting()
    out("pause x2 + resume x2 while listening: no crash", True)
    # pause survives close()+listen()?
    s2 = new_server()
    s2.listen(QHostAddress(SA.LocalHost), 0)
    s2.pauseAccepting()
    s2.close()
    s2.listen(QHostAddress(SA.LocalHost), 0)
    c4 = client("127.0.0.1", s2.serverPort())
    pump(400)
    out("pause, close, listen again: accepting? newConnection", s2.new_conn_count)
    for c in (c1, c2, c2b, c3, c4):
        if isinstance(c, socket.socket):
            c.close()
    s.close()
    s2.close()
    print(" -- pause/resume without a socket engine (child processes)")
    for name in ("pause_fresh", "resume_fresh", "pause_after_close", "resume_after_close"):
        try:
            rc, o, e = run_child(name)
            out(f"{name}: exit status", rc)
            if o:
                out(f"{name}: stdout", o.splitlines()[-1])
            if e:
                out(f"{name}: stderr (last line)", e.splitlines()[-1])
        except Exception as ex:
            out(f"{name}", f"error {ex}")


def q11():
    section("Q11 setSocketDescriptor")

    def attempt(label, fd, probe_connect=None):
        s = new_server()
        try:
            ok = s.setSocketDescriptor(fd)
        except Exception as ex:  # PyQt type conversion errors
            out(f"{label}: setSocketDescriptor raised", repr(ex))
            return
        out(f"{label}: returned", ok)
        out(f"{label}: isListening / addr / port",
            (s.isListening(), addr(s), s.serverPort()))
        out(f"{label}: socketDescriptor", fd_of(s))
        out(f"{label}: serverError", err(s))
        if probe_connect and s.isListening():
            c = client(*probe_connect)
            out(f"{label}: client connect", "ok" if isinstance(c, socket.socket) else str(c))
            got = drain(s, 400)
            out(f"{label}: Qt accepted", len(got))
            if isinstance(c, socket.socket):
                c.close()
        s.close()

    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(5)
    port = ls.getsockname()[1]
    attempt("listening TCP (IPv4)", ls.detach(), ("127.0.0.1", port))
    ls6 = socket.socket(socket.AF_INET6)
    ls6.bind(("::1", 0))
    ls6.listen(5)
    port6 = ls6.getsockname()[1]
    attempt("listening TCP (IPv6 ::1)", ls6.detach(), ("::1", port6))
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.bind(("127.0.0.1", 0))
    attempt("UDP bound", us.detach())
    bs = socket.socket()
    bs.bind(("127.0.0.1", 0))
    bport = bs.getsockname()[1]
    attempt("TCP bound not listening", bs.detach(), ("127.0.0.1", bport))
    ns = socket.socket()
    attempt("TCP unbound", ns.detach())
    attempt("fd 99999", 99999)
    attempt("fd -1", -1)
    fh = open("/dev/null", "rb")
    attempt("regular file fd (/dev/null)", os.dup(fh.fileno()))
    fh.close()
    # setSocketDescriptor while already listening
    s = QTcpServer()
    s.listen(QHostAddress(SA.LocalHost), 0)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(5)
    fd = ls.detach()
    out("while already listening: setSocketDescriptor returned", s.setSocketDescriptor(fd))
    out("while already listening: serverError / fd is new?", (err(s), fd_of(s) == fd))
    s.close()


def q12():
    section("Q12 setProxy then listen (no proxy server exists on 127.0.0.1:1080)")
    # Run in a child: a SOCKS5 listen() makes a (blocking) loopback connect to
    # the proxy, so isolate it in case it ever hangs.
    rc, o, e = run_child("proxy", timeout=90)
    out("child exit status", rc)
    for line in o.splitlines()[1:]:
        print(line)
    if e:
        out("child stderr (last lines)", " | ".join(e.splitlines()[-3:]))


def proxy_cases():
    """Body of Q12, executed in the child process."""
    # Qt bypasses any proxy when the listen address is loopback, so test both a
    # loopback address and the wildcard addresses (binding a wildcard sends no
    # traffic; the only traffic is the attempted connect to 127.0.0.1:1080).
    for label, proxy in (
        ("Socks5Proxy 127.0.0.1:1080", QNetworkProxy(PT.Socks5Proxy, "127.0.0.1", 1080)),
        ("HttpProxy 127.0.0.1:1080", QNetworkProxy(PT.HttpProxy, "127.0.0.1", 1080)),
        ("HttpCachingProxy 127.0.0.1:1080", QNetworkProxy(PT.HttpCachingProxy, "127.0.0.1", 1080)),
        ("NoProxy", QNetworkProxy(PT.NoProxy)),
        ("DefaultProxy", QNetworkProxy(PT.DefaultProxy)),
    ):
        p = proxy
        out(f"{label}: proxy() type/host/port after setProxy",
            (p.type().value, p.type().name, p.hostName(), p.port()))
        out(f"{label}: ListeningCapability",
            bool(proxy.capabilities() & QNetworkProxy.Capability.ListeningCapability))
        for aname, a in (("LocalHost", QHostAddress(SA.LocalHost)),
                         ("AnyIPv4", QHostAddress(SA.AnyIPv4)),
                         ("Any", QHostAddress(SA.Any))):
            s = QTcpServer()
            s.setProxy(proxy)
            t = time.monotonic()
            ok = s.listen(a, 0)
            ms = round((time.monotonic() - t) * 1000)
            out(f"{label}: listen({aname},0) -> ok, ms, serverError, isListening, port",
                (ok, ms, err(s), s.isListening(), s.serverPort()))
            s.close()
    out("QNetworkProxy.applicationProxy().type()", QNetworkProxy.applicationProxy().type().name)


def q13():
    section("Q13 acceptError via EMFILE (child process)")
    rc, o, e = run_child("emfile", timeout=60)
    out("child exit status", rc)
    for line in o.splitlines():
        print("  " + line)
    if e:
        out("child stderr (last lines)", " | ".join(e.splitlines()[-3:]))


def q14():
    section("Q14 addPendingConnection from an incomingConnection override")

    class Server(QTcpServer):
        def __init__(self):
            super().__init__()
            self.made = []
            self.calls = 0

        def incomingConnection(self, handle):
            self.calls += 1
            sock = QTcpSocket(self)
            sock.setSocketDescriptor(handle)
            sock.setObjectName(f"custom-{self.calls}")
            self.made.append(sock)
            self.addPendingConnection(sock)

    s = Server()
    s.n = 0
    s.newConnection.connect(lambda: setattr(s, "n", s.n + 1))
    s.listen(QHostAddress(SA.LocalHost), 0)
    c = client("127.0.0.1", s.serverPort())
    pump(500, until=lambda: s.n > 0)
    out("incomingConnection calls", s.calls)
    out("newConnection emitted", s.n)
    got = s.nextPendingConnection()
    out("nextPendingConnection is the socket we added", got is s.made[0] if got else None)
    out("objectName", got.objectName() if got else None)

    # override that does NOT call addPendingConnection: is newConnection emitted?
    class Silent(QTcpServer):
        def __init__(self):
            super().__init__()
            self.keep = []

        def incomingConnection(self, handle):
            sock = QTcpSocket(self)
            sock.setSocketDescriptor(handle)
            self.keep.append(sock)

    s2 = Silent()
    s2.n = 0
    s2.newConnection.connect(lambda: setattr(s2, "n", s2.n + 1))
    s2.listen(QHostAddress(SA.LocalHost), 0)
    c2 = client("127.0.0.1", s2.serverPort())
    s2.pca = 0
    s2.pendingConnectionAvailable.connect(lambda: setattr(s2, "pca", s2.pca + 1))
    pump(400)
    out("override without addPendingConnection: newConnection emitted", s2.n)
    out("override without addPendingConnection: pendingConnectionAvailable", s2.pca)
    out("override without addPendingConnection: hasPendingConnections", s2.hasPendingConnections())

    # addPendingConnection called from outside on an arbitrary (unconnected) socket
    s3 = QTcpServer()
    s3.n = 0
    s3.pca = 0
    s3.newConnection.connect(lambda: setattr(s3, "n", s3.n + 1))
    s3.pendingConnectionAvailable.connect(lambda: setattr(s3, "pca", s3.pca + 1))
    try:
        x = QTcpSocket()
        s3.addPendingConnection(x)
        pump(100)
        out("external addPendingConnection on non-listening server: allowed", True)
        out("  newConnection / pendingConnectionAvailable emitted", (s3.n, s3.pca))
        out("  hasPendingConnections / next is same", (s3.hasPendingConnections(), s3.nextPendingConnection() is x))
    except Exception as ex:
        out("external addPendingConnection", repr(ex))

    # pendingConnectionAvailable (Qt 6.4 signal): when is it emitted?
    s4 = QTcpServer()
    s4.pca = 0
    s4.n = 0
    s4.pendingConnectionAvailable.connect(lambda: setattr(s4, "pca", s4.pca + 1))
    s4.newConnection.connect(lambda: setattr(s4, "n", s4.n + 1))
    s4.listen(QHostAddress(SA.LocalHost), 0)
    c4 = client("127.0.0.1", s4.serverPort())
    pump(400)
    out("default server: newConnection / pendingConnectionAvailable", (s4.n, s4.pca))
    for cc in (c, c2, c4):
        if isinstance(cc, socket.socket):
            cc.close()
    for x in (s, s2, s3, s4):
        x.close()


def q15():
    section("Q15 enum values")
    for enum in (QAbstractSocket.SocketError, QAbstractSocket.SocketState,
                 QNetworkProxy.ProxyType, QAbstractSocket.NetworkLayerProtocol,
                 QHostAddress.SpecialAddress):
        print(f" -- {enum.__qualname__}")
        for m in enum:
            print(f"  {m.name} = {m.value}")


def q16():
    section("Q16 waitForNewConnection with a connection already pending")
    s = new_server()
    s.listen(QHostAddress(SA.LocalHost), 0)
    c = client("127.0.0.1", s.serverPort())
    pump(500, until=s.hasPendingConnections)
    out("a connection pending in Qt's queue, backlog empty: hasPendingConnections", s.hasPendingConnections())
    t = time.monotonic()
    r = s.waitForNewConnection(300)
    out("waitForNewConnection(300) -> (result, timedOut), ms",
        (r, round((time.monotonic() - t) * 1000)))
    out("serverError after", err(s))
    out("the pending one is still there: hasPendingConnections", s.hasPendingConnections())
    t = time.monotonic()
    r = s.waitForNewConnection(0)
    out("waitForNewConnection(0) with one pending -> (result, timedOut), ms",
        (r, round((time.monotonic() - t) * 1000)))
    # a blocking loop that claims one per wait strands the second of two
    # clients that arrived together
    c2 = client("127.0.0.1", s.serverPort())
    c3 = client("127.0.0.1", s.serverPort())
    s.nextPendingConnection()
    r = s.waitForNewConnection(300)
    out("c2, c3 in the backlog, one claimed: waitForNewConnection(300)", r)
    out("  pending now (claimable without another wait)", len(drain(s, 0)))
    for x in (c, c2, c3):
        if isinstance(x, socket.socket):
            x.close()
    s.close()
    # the time-out's error after an accept happened (the engine's last
    # accept ended in EAGAIN), with nothing pending
    s = new_server()
    s.listen(QHostAddress(SA.LocalHost), 0)
    c = client("127.0.0.1", s.serverPort())
    drain(s, 400)
    r = s.waitForNewConnection(100)
    out("after one accept, nothing pending: waitForNewConnection(100), serverError", (r, err(s)))
    c.close()
    s.close()


def q17():
    section("Q17 raising setMaxPendingConnections while clients wait in the backlog")
    s = new_server()
    s.setMaxPendingConnections(1)
    s.listen(QHostAddress(SA.LocalHost), 0)
    cl = [client("127.0.0.1", s.serverPort()) for _ in range(3)]
    pump(400)
    out("max=1, 3 clients: newConnection", s.new_conn_count)
    s.setMaxPendingConnections(5)
    pump(500)
    out("set(5), nothing claimed, after pump: newConnection", s.new_conn_count)
    t = time.monotonic()
    r = s.waitForNewConnection(0)
    out("  then waitForNewConnection(0)", r)
    pump(300)
    out("  newConnection after waitForNewConnection(0) + pump", s.new_conn_count)
    s.nextPendingConnection()
    pump(500, until=lambda: s.new_conn_count >= 3)
    out("after one claim + pump: newConnection", s.new_conn_count)
    for c in cl:
        if isinstance(c, socket.socket):
            c.close()
    s.close()


def q18():
    section("Q18 incomingConnection overrides that keep or close the descriptor")

    class Keeper(QTcpServer):
        """Qt's Threaded Fortune Server: keep every socket, never queue it."""
        def __init__(self):
            super().__init__()
            self.keep = []
            self.calls = 0

        def incomingConnection(self, handle):
            self.calls += 1
            sock = QTcpSocket(self)
            sock.setSocketDescriptor(handle)
            self.keep.append(sock)

    s = Keeper()
    s.n = 0
    s.newConnection.connect(lambda: setattr(s, "n", s.n + 1))
    s.listen(QHostAddress(SA.LocalHost), 0)
    cl = [client("127.0.0.1", s.serverPort()) for _ in range(40)]
    pump(1500, until=lambda: s.calls >= 40)
    out("40 clients held by the override at once (maxPendingConnections 30): incomingConnection calls",
        s.calls)
    out("  newConnection emitted", s.n)
    for sock in s.keep:
        sock.write(b"x")
        sock.flush()
    served = sum(1 for c in cl if isinstance(c, socket.socket) and peer_state(c, 1.0) == "data b'x'")
    out("  clients that received a byte from their held socket", served)
    for c in cl:
        if isinstance(c, socket.socket):
            c.close()
    s.close()

    class Closer(QTcpServer):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def incomingConnection(self, handle):
            self.calls += 1
            os.close(int(handle))

    s2 = Closer()
    s2.n = 0
    s2.newConnection.connect(lambda: setattr(s2, "n", s2.n + 1))
    s2.listen(QHostAddress(SA.LocalHost), 0)
    c = client("127.0.0.1", s2.serverPort())
    pump(500, until=lambda: s2.n > 0)
    out("override that closes the descriptor: incomingConnection calls / newConnection", (s2.calls, s2.n))
    out("  client sees", peer_state(c))
    c.close()
    s2.close()


def q19():
    section("Q19 deleting the server: what happens to claimed sockets")
    s = new_server()
    s.listen(QHostAddress(SA.LocalHost), 0)
    port = s.serverPort()
    c1 = client("127.0.0.1", port)
    c2 = client("127.0.0.1", port)
    got = drain(s, 400)
    out("claimed", len(got))
    out("claimed socket's parent is the server", all(g.parent() is s for g in got))
    got[1].setParent(None)      # taken away from the server, as a QThread worker would
    kept = got[1]
    sip.delete(s)  # ~QTcpServer() now (deleteLater needs a running event loop)
    del s
    pump(300)
    out("claimed socket left as the server's child: client sees", peer_state(c1))
    out("claimed socket re-parented away from the server: client sees", peer_state(c2))
    out("  re-parented socket state", kept.state().name)
    for x in (c1, c2):
        x.close()
    kept.close()
    s = new_server()
    s.listen(QHostAddress(SA.LocalHost), 0)
    c3 = client("127.0.0.1", s.serverPort())
    got = drain(s, 400)
    s.close()
    pump(200)
    out("close() (not deletion), claimed socket: client sees", peer_state(c3))
    c3.close()
    got[0].close()


def q20():
    section("Q20 listen on an IPv4-mapped IPv6 address")
    for text in ("::ffff:127.0.0.1", "::ffff:0.0.0.0"):
        s = QTcpServer()
        a = QHostAddress(text)
        out(f"QHostAddress({text!r}).protocol()", a.protocol().name)
        ok = s.listen(a, 0)
        out(f"listen({text!r}, 0)", ok)
        out("  serverError", err(s))
        out("  isListening / serverAddress / port", (s.isListening(), addr(s), s.serverPort()))
        s.close()


def listen_queue(port):
    """The kernel's accept-queue limit of a listening socket (ss Send-Q)."""
    r = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10)
    fields = r.stdout.split()
    return int(fields[2]) if len(fields) > 2 else r.stdout.strip()


def q21():
    section("Q21 setListenBacklogSize: 0, negative, huge")
    out("/proc/sys/net/core/somaxconn", open("/proc/sys/net/core/somaxconn").read().strip())
    for n in (None, 0, 1, -5, -1, 100000):
        s = QTcpServer()
        if n is not None:
            s.setListenBacklogSize(n)
        ok = s.listen(QHostAddress(SA.LocalHost), 0)
        label = "default" if n is None else f"set({n})"
        out(f"{label}: listen / listenBacklogSize() / serverError / kernel queue limit",
            (ok, s.listenBacklogSize(), err(s), listen_queue(s.serverPort()) if ok else None))
        s.close()


    section("Q22 a claimed QTcpSocket when the peer closes, half-closes or resets; abort()")

    def claimed(srv, port):
        c = client("127.0.0.1", port)
        socks = drain(srv)
        s = socks[0]
        s.ev = []
        s.readChannelFinished.connect(lambda: s.ev.append("readChannelFinished"))
        s.errorOccurred.connect(lambda e: s.ev.append(f"errorOccurred({e.value} {e.name}) {s.errorString()!r}"))
        s.disconnected.connect(lambda: s.ev.append("disconnected"))
        s.stateChanged.connect(lambda st: s.ev.append(f"stateChanged({st.name})"))
        return c, s

    srv = new_server()
    srv.listen(QHostAddress(SA.LocalHost), 0)
    port = srv.serverPort()
    for how in ("close", "shutdown(SHUT_WR)", "reset"):
        c, s = claimed(srv, port)
        if how == "close":
            c.close()
        elif how == "shutdown(SHUT_WR)":
            c.sendall(b"question")
            c.shutdown(socket.SHUT_WR)
        else:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()
        pump(500, until=lambda: "disconnected" in s.ev)
        out(f"peer {how}: signals", s.ev)
        out(f"peer {how}: error()", (s.error().value, s.error().name, s.errorString()))
        out(f"peer {how}: state()", s.state().name)
        if how == "shutdown(SHUT_WR)":
            out(f"peer {how}: readAll()", bytes(s.readAll()))
            n = s.write(b"answer")
            pump(200)
            out(f"peer {how}: write() after the FIN", n)
            out(f"peer {how}: the client then reads", peer_state(c))
            c.close()
    # abort(): FIN or RST?
    c, s = claimed(srv, port)
    s.abort()
    pump(200)
    out("abort(): the client sees", peer_state(c))
    c.close()
    # disconnectFromHost() while the client still sends and reads slowly
    c, s = claimed(srv, port)
    c.sendall(b"x" * 1000)
    pump(200)
    s.write(b"y" * 100000)
    s.disconnectFromHost()
    pump(500)
    total, end = 0, ""
    c.settimeout(1)
    try:
        while True:
            d = c.recv(65536)
            if not d:
                end = "EOF"
                break
            total += len(d)
    except ConnectionResetError:
        end = "RST"
    except socket.timeout:
        end = "timeout"
    out("disconnectFromHost() with 1000 unread bytes from the client: the client reads", (total, end))
    c.close()
    srv.close()


# --------------------------------------------------------------------------
# child-process scenarios
# --------------------------------------------------------------------------

def child(name):
    print(f"child {name} starting", flush=True)
    if name in ("pause_fresh", "resume_fresh"):
        s = QTcpServer()
        (s.pauseAccepting if name == "pause_fresh" else s.resumeAccepting)()
        print("survived", flush=True)
        return
    if name in ("pause_after_close", "resume_after_close"):
        s = QTcpServer()
        s.listen(QHostAddress(SA.LocalHost), 0)
        s.close()
        (s.pauseAccepting if name == "pause_after_close" else s.resumeAccepting)()
        print("survived", flush=True)
        return
    if name == "proxy":
        proxy_cases()
        return
    if name == "emfile":
        s = new_server()
        s.ae = []
        s.acceptError.connect(lambda e: s.ae.append((e.value, e.name, s.errorString())))
        s.listen(QHostAddress(SA.LocalHost), 0)
        port = s.serverPort()
        pre = socket.socket()          # client fd allocated before we exhaust fds
        pre2 = socket.socket()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        hog = []
        try:
            for _ in range(1000):      # bounded: fill until EMFILE
                hog.append(os.open("/dev/null", os.O_RDONLY))
        except OSError as ex:
            print(f"fd exhaustion reached after {len(hog)} opens: {ex.strerror}")
        pre.settimeout(1)
        pre.connect(("127.0.0.1", port))  # kernel accepts; Qt's accept() gets EMFILE
        pump(500, until=lambda: bool(s.ae))
        print(f"acceptError emissions: {s.ae}")
        print(f"newConnection: {s.new_conn_count}")
        print(f"serverError() after: {err(s)}")
        print(f"isListening after: {s.isListening()}")
        # free the fds: does Qt resume by itself?
        for fd in hog:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        pump(600)
        print(f"after freeing fds, without resumeAccepting: newConnection={s.new_conn_count} "
              f"acceptError count={len(s.ae)}")
        pre2.settimeout(1)
        pre2.connect(("127.0.0.1", port))
        pump(600)
        print(f"second client, still no resume: newConnection={s.new_conn_count}")
        s.resumeAccepting()
        pump(600, until=lambda: s.new_conn_count >= 2)
        print(f"after resumeAccepting(): newConnection={s.new_conn_count}")
        print(f"serverError() after successful accepts: {err(s)}")
        pre.close()
        pre2.close()
        s.close()
        return
    raise SystemExit(f"unknown child {name}")


SECTIONS = {1: q1, 2: q2, 3: q3, 4: q4, 5: q5, 6: q6, 7: q7, 8: q8, 9: q9,
            10: q10, 11: q11, 12: q12, 13: q13, 14: q14, 15: q15,
            16: q16, 17: q17, 18: q18, 19: q19, 20: q20, 21: q21, 22: q22}


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    print(f"Qt {QT_VERSION_STR}, PyQt {PYQT_VERSION_STR}, Python {sys.version.split()[0]}, "
          f"uid={os.getuid()}, net.ipv6.bindv6only="
          f"{open('/proc/sys/net/ipv6/bindv6only').read().strip()}")
    wanted = [int(a) for a in sys.argv[1:]] or sorted(SECTIONS)
    for n in wanted:
        try:
            SECTIONS[n]()
        except Exception:
            print(f"  !! section {n} failed:")
            traceback.print_exc(file=sys.stdout)


if __name__ == "__main__":
    main()
