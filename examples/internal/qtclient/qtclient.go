// Package qtclient runs the real Qt clients of scripts/qt (PyQt6 on
// Debian's /usr/bin/python3) against the examples, from their tests.
package qtclient

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Python is the interpreter that has PyQt6 (Debian's python3-pyqt6).
const Python = "/usr/bin/python3"

// Require skips the test when PyQt6 is not installed, or fails it when the
// CI environment variable is "true": CI installs python3-pyqt6 (.ci/run),
// so a missing Qt there is a broken setup, not a reason to skip.
func Require(t testing.TB) {
	t.Helper()
	out, err := exec.Command(Python, "-c", "import PyQt6.QtNetwork").CombinedOutput()
	if err == nil {
		return
	}
	msg := "PyQt6 is not available to " + Python + " (install Debian's python3-pyqt6): " +
		strings.TrimSpace(string(out)) + " " + err.Error()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Script is the path of scripts/qt/NAME in this repository.
func Script(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "scripts", "qt", name)
}

// Fortune runs Qt's Fortune Client (scripts/qt/fortune_client.py) against
// host:port and returns the fortune it read, or fails the test with the
// client's stderr. flags go to the script: "--tls", CAFILE makes it Qt's
// QSslSocket trusting the CAs in CAFILE.
func Fortune(t testing.TB, host string, port int, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{Script("fortune_client.py"), host, strconv.Itoa(port), "--timeout", "10"}, flags...)
	cmd := exec.CommandContext(ctx, Python, args...)
	cmd.Env = append(os.Environ(), "QT_QPA_PLATFORM=offscreen")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("Qt fortune client: %v\n%s", err, stderr.String())
	}
	return strings.TrimSuffix(stdout.String(), "\n")
}
