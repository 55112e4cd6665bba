// Command tcpactor-bench measures tcpactor against a plain
// goroutine-per-connection net.Listener echo server, side by side in one run,
// on loopback (`make bench`):
//
//	tcpactor-bench [--quick] [--kinds actor,owner,remote,remote-tls] [--json] [--out FILE] [--svg FILE] [--profile DIR] ...
//
// It prints a Markdown table of the ratios tcpactor/plain (or JSON), and its
// progress on stderr. Run `tcpactor-bench --help` for every flag.
//
// It is a command of its own, not a part of the tcpactor CLI: it builds its
// servers from the library packages (server, messages) that the CLI uses
// too, and runs each in a child process of its own — this binary again, as
// the hidden `tcpactor-bench server` — so that the memory it reads from
// /proc/PID/status is the server's alone. Neither command calls or runs the
// other.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tcpactor/tcpactor/internal/cliflag"
)

// childCommand is the hidden first argument that makes this binary a server
// child of the bench (server.go).
const childCommand = "server"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the bench, or with childCommand first, one server child; it
// returns the exit status: 0, 1 for a failure, 2 for a bad command line.
func run(args []string, stdout, stderr io.Writer) int {
	name, err := "tcpactor-bench", error(nil)
	if len(args) > 0 && args[0] == childCommand {
		name += " " + childCommand
		err = benchServer(args[1:], os.Stdin, stdout, stderr)
	} else {
		err = bench(args, stdout, stderr)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(err.Error()))
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(err.Error()))
		return 1
	}
}

// The command line's plumbing, shared with the other command (internal/cliflag).
var (
	errUsage = cliflag.ErrUsage
	badUsage = cliflag.BadUsage
	oneLine  = cliflag.OneLine
	parse    = cliflag.Parse
)

// newFlags makes the flag set of a command.
func newFlags(name string, w io.Writer) *flag.FlagSet { return cliflag.NewFlags(name, w) }
