#!/usr/bin/python3
"""Qt's Fortune Client, reduced to what a test needs (PyQt6, real Qt).

Connects with a QTcpSocket, reads one QString with a QDataStream read
transaction exactly as Qt's fortuneclient example does (Qt 5.7 and later: no
block size, the stream rolls back until the whole string is there), prints
it on stdout and exits 0. The server must disconnect after the fortune.

Usage (Debian's python, which has python3-pyqt6):

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/qt/fortune_client.py HOST PORT [--timeout SECONDS] [--tls CAFILE]

With --tls the socket is a QSslSocket (connectToHostEncrypted) that trusts
only the CA certificates in CAFILE and verifies the server's certificate
against HOST; any SSL error fails. The negotiated protocol and cipher go to
stderr on success.

Exit status: 0 a fortune was read; 1 a socket error or the peer closed
before a whole QString came; 2 bad usage; 3 timed out. Errors go to stderr
in one line.
"""

import argparse
import sys

from PyQt6.QtCore import QCoreApplication, QDataStream, QTimer
from PyQt6.QtNetwork import QAbstractSocket, QSslCertificate, QSslSocket, QTcpSocket


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--tls", metavar="CAFILE", help="connect with QSslSocket, trusting the CAs in CAFILE")
    args = ap.parse_args()

    app = QCoreApplication(sys.argv[:1])
    if args.tls:
        sock = QSslSocket()
        cas = QSslCertificate.fromPath(args.tls)
        if not cas:
            print(f"fortune_client: no certificate in {args.tls}", file=sys.stderr)
            return 2
        conf = sock.sslConfiguration()
        conf.setCaCertificates(cas)
        sock.setSslConfiguration(conf)
    else:
        sock = QTcpSocket()
    stream = QDataStream(sock)
    stream.setVersion(QDataStream.Version.Qt_6_0)
    result = {"code": 3, "fortune": None, "error": "timed out"}

    def finish(code, fortune=None, error=None):
        if result["code"] == 3 and (result["fortune"] is None):
            result.update(code=code, fortune=fortune, error=error)
        app.exit(0)

    def read_fortune():
        stream.startTransaction()
        fortune = stream.readQString()
        if not stream.commitTransaction():
            return  # not all there yet: the transaction rolled back
        finish(0, fortune=fortune)

    def on_error(err):
        if err == QAbstractSocket.SocketError.RemoteHostClosedError:
            # The server closes after the fortune; readyRead came first.
            if result["fortune"] is None:
                read_fortune()
            if result["fortune"] is None:
                finish(1, error="the server closed before a whole QString arrived")
            return
        finish(1, error=f"socket error {err.name}: {sock.errorString()}")

    sock.readyRead.connect(read_fortune)
    sock.errorOccurred.connect(on_error)
    QTimer.singleShot(int(args.timeout * 1000), lambda: finish(3, error="timed out"))
    session = {}
    if args.tls:
        def on_ssl_errors(errors):
            finish(1, error="SSL errors: " + "; ".join(e.errorString() for e in errors))

        def on_encrypted():
            session["protocol"] = sock.sessionProtocol().name
            session["cipher"] = sock.sessionCipher().name()

        sock.sslErrors.connect(on_ssl_errors)
        sock.encrypted.connect(on_encrypted)
        sock.connectToHostEncrypted(args.host, args.port)
    else:
        sock.connectToHost(args.host, args.port)
    app.exec()
    sock.abort()

    if result["code"] == 0:
        if args.tls:
            if not session:
                print("fortune_client: a fortune arrived without encryption", file=sys.stderr)
                return 1
            print(f"encrypted: {session['protocol']} {session['cipher']}", file=sys.stderr)
        print(result["fortune"])
        return 0
    print(f"fortune_client: {result['error']}", file=sys.stderr)
    return result["code"]


if __name__ == "__main__":
    sys.exit(main())
