package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpactor/tcpactor/internal/testkit"
)

// opensslEcho sends line through the real `openssl s_client` and returns
// what comes back first, or the error and openssl's stderr.
func opensslEcho(t *testing.T, openssl, addr string, certs *testkit.Certs, clientCert bool, line string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"s_client", "-connect", addr, "-CAfile", certs.CAFile, "-verify_return_error", "-quiet"}
	if clientCert {
		args = append(args, "-cert", certs.ClientCertFile, "-key", certs.ClientKeyFile)
	}
	cmd := exec.CommandContext(ctx, openssl, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &testkit.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { // -quiet ignores EOF on stdin: s_client ends when killed
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	if _, err := io.WriteString(stdin, line); err != nil {
		return "", fmt.Errorf("write to s_client: %v; stderr: %s", err, stderr)
	}
	got, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return got, fmt.Errorf("%v; stderr: %s", err, stderr)
	}
	return got, nil
}

func testServeTLSEchoesToOpenSSLAndCountsFailedHandshakes(t *testing.T) {
	openssl := needTool(t, "openssl", "openssl")
	certs := testkit.NewCerts(t)
	p := start(t, "serve", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--drain-timeout", "100ms",
		"--tls-cert", certs.ServerCertFile, "--tls-key", certs.ServerKeyFile, "--tls-client-ca", certs.CAFile)
	addr := p.line("listening on")
	metrics := p.line("metrics on")

	if got, err := opensslEcho(t, openssl, addr, certs, true, "hello from openssl\n"); err != nil || got != "hello from openssl\n" {
		t.Fatalf("openssl s_client with a client certificate: got %q (%v)", got, err)
	}
	failures := func(want float64) {
		t.Helper()
		eventually(t, func() string {
			if m := scrape(t, metrics); m["tcpactor_tls_handshake_failures_total"] != want {
				return fmt.Sprintf("tcpactor_tls_handshake_failures_total = %v, want %v", m["tcpactor_tls_handshake_failures_total"], want)
			}
			return ""
		})
	}
	failures(0)
	// A plain TCP client is dropped, and counted.
	c, r := dialEcho(t, addr)
	io.WriteString(c, "plain text\n")
	if rest, _ := io.ReadAll(r); strings.Contains(string(rest), "plain text") {
		t.Fatalf("a plain TCP client got its bytes echoed: %q", rest)
	}
	failures(1)
	// So is a TLS client without the client certificate the server requires.
	if got, err := opensslEcho(t, openssl, addr, certs, false, "no certificate\n"); err == nil {
		t.Fatalf("openssl s_client without a client certificate was served: %q", got)
	}
	failures(2)
	if got, err := opensslEcho(t, openssl, addr, certs, true, "still serving\n"); err != nil || got != "still serving\n" {
		t.Fatalf("after the failures: got %q (%v)", got, err)
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d; stderr:\n%s", code, p.stderr)
	}
}

func testServeTLSFlagsRefuseWhatCannotServe(t *testing.T) {
	certs := testkit.NewCerts(t)
	for _, args := range [][]string{
		{"--tls-cert", certs.ServerCertFile},
		{"--tls-key", certs.ServerKeyFile},
		{"--tls-client-ca", certs.CAFile},
		{"--tls-cert", certs.ServerCertFile, "--tls-key", "/nonexistent/key.pem"},
		{"--tls-cert", certs.ServerCertFile, "--tls-key", certs.ClientKeyFile}, // not the certificate's key
		{"--tls-cert", certs.ServerCertFile, "--tls-key", certs.ServerKeyFile, "--tls-client-ca", certs.ServerKeyFile},
		{"--tls-cert", certs.ServerCertFile, "--tls-key", certs.ServerKeyFile, "--tls-handshake-timeout", "0s"},
	} {
		out, errOut, code := runCmd(t, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
		if code == 0 || strings.Count(errOut, "\n") != 1 || out != "" {
			t.Errorf("serve %q: exit %d, stdout %q, stderr %q; want non-zero, one line on stderr", args, code, out, errOut)
		}
	}
}
