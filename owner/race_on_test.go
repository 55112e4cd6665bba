//go:build race

package owner_test

// raceOn says the race detector is on: sync.Pool then drops a quarter of
// what it is given, so pooled memory is allocated again now and then.
const raceOn = true
