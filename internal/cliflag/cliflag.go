// Package cliflag holds what the tcpactor commands share of their command
// lines: flag sets that report a bad flag in one line, range-checked
// integer flags, and the usage error that means exit status 2.
package cliflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// intFlag is an integer flag that accepts only min to max, so that a value
// past an int32 field is refused instead of wrapped.
type intFlag struct {
	p        *int
	min, max int
}

func (f *intFlag) String() string {
	if f.p == nil {
		return "0"
	}
	return strconv.Itoa(*f.p)
}

func (f *intFlag) Set(s string) error {
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil || v < int64(f.min) || v > int64(f.max) {
		return fmt.Errorf("want an integer from %d to %d", f.min, f.max)
	}
	*f.p = int(v)
	return nil
}

// IntVar defines an integer flag that accepts min to max; the usage should
// name its value in backquotes (the flag package shows a custom flag as
// "value" otherwise).
func IntVar(fs *flag.FlagSet, p *int, name string, value, min, max int, usage string) {
	*p = value
	fs.Var(&intFlag{p: p, min: min, max: max}, name, usage)
}

// Int is IntVar returning the variable.
func Int(fs *flag.FlagSet, name string, value, min, max int, usage string) *int {
	p := new(int)
	IntVar(fs, p, name, value, min, max, usage)
	return p
}

// ErrUsage marks a command line that cannot be used (exit status 2):
// errors.Is(err, ErrUsage) holds for every error of BadUsage and Parse.
var ErrUsage = errors.New("usage")

// usageError is a bad command line, reported in one line.
type usageError struct{ msg string }

func (e usageError) Error() string        { return e.msg }
func (e usageError) Is(target error) bool { return target == ErrUsage }

// BadUsage makes a usage error.
func BadUsage(format string, args ...any) error {
	return usageError{msg: fmt.Sprintf(format, args...)}
}

// OneLine keeps an error message on one line.
func OneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// NewFlags makes a flag set whose errors come back from Parse as one line;
// --help prints the flags to w.
func NewFlags(name string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	return fs
}

// Parse parses args. A bad flag becomes a one-line usage error (the flag
// package would print every flag after it); --help prints the flags and
// returns flag.ErrHelp.
func Parse(fs *flag.FlagSet, args []string) error {
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
		return BadUsage("%v (try --help)", err)
	case fs.NArg() > 0:
		return BadUsage("unexpected argument %q (try --help)", fs.Arg(0))
	}
	return nil
}
