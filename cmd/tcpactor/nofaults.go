//go:build !tcpactor_faults

package main

import "github.com/tcpactor/tcpactor/server"

// injectFaults does nothing: see faults.go, built only for tests.
func injectFaults(*server.Options) {}
