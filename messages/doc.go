// Package messages holds the tcpactor wire protocol: the Go code generated
// from proto/tcpactor/v1/tcpactor.proto (do not edit tcpactor.pb.go; run
// `make proto`), plus small hand-written helpers for Qt's error codes and
// host addresses.
package messages
