package main

import (
	"testing"

	"github.com/tcpactor/tcpactor/internal/testkit"
)

// TestMain checks for leaked goroutines (goleak, after the tests).
func TestMain(m *testing.M) { testkit.RunTests(m) }
