package asyncdispatch

import (
	"errors"
	"fmt"
	"strings"
)

// AsyncError is how an error looks once it has crossed async procedures:
// the original error plus the procedures it passed through, innermost
// first (Nim's "Async traceback", without needing a debug build). Error()
// is the original message, unchanged; Trace() and the %+v verb show the
// procedures. errors.Is and errors.As see the original through Unwrap.
type AsyncError struct {
	Err   error
	Procs []string
}

func (e *AsyncError) Error() string { return e.Err.Error() }
func (e *AsyncError) Unwrap() error { return e.Err }

// Trace returns the error and the procedures it passed through.
func (e *AsyncError) Trace() string {
	var b strings.Builder
	b.WriteString(e.Err.Error())
	b.WriteString("\nAsync traceback:")
	for i := len(e.Procs) - 1; i >= 0; i-- {
		b.WriteString("\n  ")
		b.WriteString(e.Procs[i])
	}
	return b.String()
}

// Format implements %+v as Trace.
func (e *AsyncError) Format(s fmt.State, verb rune) {
	if verb == 'v' && s.Flag('+') {
		fmt.Fprint(s, e.Trace())
		return
	}
	fmt.Fprint(s, e.Error())
}

// traced records that err left the async procedure c.
func traced(err error, c procCall) error {
	name := c.procName()
	var ae *AsyncError
	if errors.As(err, &ae) && ae == err {
		procs := make([]string, len(ae.Procs), len(ae.Procs)+1)
		copy(procs, ae.Procs)
		return &AsyncError{Err: ae.Err, Procs: append(procs, name)}
	}
	if ae != nil {
		// Wrapped by the user on the way: keep their wrapping, start a
		// new trace around it.
		return &AsyncError{Err: err, Procs: append(append([]string(nil), ae.Procs...), name)}
	}
	return &AsyncError{Err: err, Procs: []string{name}}
}
