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
	"strings"
)

// childCommand is the hidden first argument that makes this binary a server
// child of the bench (server.go).
const childCommand = "server"

// errUsage marks a command line that cannot be used: exit status 2.
var errUsage = errors.New("usage")

// usageError is a bad command line, reported in one line.
type usageError struct{ msg string }

func (e usageError) Error() string        { return e.msg }
func (e usageError) Is(target error) bool { return target == errUsage }

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

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// newFlags makes a flag set whose errors come back from parse as one line;
// --help prints the flags to w.
func newFlags(name string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	return fs
}

// parse parses args. A bad flag becomes a one-line usage error (the flag
// package would print every flag after it); --help prints the flags.
func parse(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(out, "usage: %s [flags]\n\nflags:\n", fs.Name())
		fs.PrintDefaults()
		return err
	case err != nil:
		return usageError{fmt.Sprintf("%v (try --help)", err)}
	case fs.NArg() > 0:
		return usageError{fmt.Sprintf("unexpected argument %q (try --help)", fs.Arg(0))}
	}
	return nil
}
