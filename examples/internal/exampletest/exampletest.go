// Package exampletest runs an example's run function the way its main does,
// from the example's test.
package exampletest

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// RunFunc is an example's program: it prints "PREFIX ADDRESS" lines on out
// once it is ready and runs until ctx is cancelled, then returns.
type RunFunc func(ctx context.Context, out io.Writer) error

// Start runs f in the background and returns the words after each ready
// line's prefix (e.g. "listening on" → "127.0.0.1:40123"), one per prefix,
// in order. When the test ends it cancels f's context and fails the test if
// f returns an error or does not return within ten seconds.
func Start(t testing.TB, f RunFunc, prefixes ...string) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := f(ctx, pw)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		pr.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("run did not return within 10s of its context's end")
		}
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var got []string
	timeout := time.After(10 * time.Second)
	for _, p := range prefixes {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("run ended its output before a line %q", p)
			}
			if !strings.HasPrefix(line, p+" ") {
				t.Fatalf("run printed %q, want a line %q ...", line, p)
			}
			got = append(got, strings.TrimSpace(strings.TrimPrefix(line, p)))
		case <-timeout:
			t.Fatalf("no line %q within 10s", p)
		}
	}
	// Keep draining so that later prints never block run.
	go func() {
		for range lines {
		}
	}()
	return got
}
