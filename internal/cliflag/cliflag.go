// Package cliflag holds the flag types the tcpactor commands share.
package cliflag

import (
	"flag"
	"fmt"
	"strconv"
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
