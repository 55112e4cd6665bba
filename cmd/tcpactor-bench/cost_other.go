//go:build !linux

package main

import (
	"errors"
	"time"
)

var errNoCost = errors.New("client CPU and machine idle are measured on Linux only")

func selfCPU() (time.Duration, error)     { return 0, errNoCost }
func machineIdle() (time.Duration, error) { return 0, errNoCost }
