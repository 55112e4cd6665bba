package main

import (
	"net"
	"strconv"

	"github.com/tcpactor/tcpactor/messages"
)

// statusJSON is what status --json prints: the server's info and its live
// connections.
type statusJSON struct {
	serverInfo
	Connections []connInfo `json:"connections"`
}

// connInfo is one live connection in status --json (Ranch's procs/info).
type connInfo struct {
	ID                     uint64 `json:"id"`
	Peer                   string `json:"peer"`  // HOST:PORT; behind a PROXY-protocol balancer, the client's
	Local                  string `json:"local"` // HOST:PORT the client connected to
	TLSVersion             string `json:"tls_version,omitempty"`
	TLSCipher              string `json:"tls_cipher,omitempty"`
	PeerCertificateSubject string `json:"peer_certificate_subject,omitempty"`
}

func connInfos(infos []*messages.ConnectionInfo) []connInfo {
	out := make([]connInfo, 0, len(infos))
	for _, i := range infos {
		out = append(out, connInfo{
			ID:                     i.Id,
			Peer:                   net.JoinHostPort(i.PeerAddress, strconv.Itoa(int(i.PeerPort))),
			Local:                  net.JoinHostPort(i.LocalAddress, strconv.Itoa(int(i.LocalPort))),
			TLSVersion:             i.TlsVersion,
			TLSCipher:              i.TlsCipher,
			PeerCertificateSubject: i.PeerCertificateSubject,
		})
	}
	return out
}
