// Package wipe overwrites secrets in memory.
//
// Go strings are immutable and the garbage collector does not clear what it
// frees, so a token the agent has dropped stays readable in its memory (a
// core dump, a debugger) until that memory happens to be reused. The agent
// overwrites the copies it made itself when it drops them; see agent's
// wipe.go for where.
package wipe

import (
	"strings"
	"unsafe"
)

// Own returns a copy of s in memory of its own, which String may overwrite.
func Own(s string) string { return strings.Clone(s) }

// String overwrites the bytes of s with zeros. s must be a string this
// process made at run time and that nothing uses any more: one returned by
// Own, or one decoded from a message (JSON, a form, a conversion of a
// buffer). A literal lives in read-only memory, so String would crash on it.
// Strings of one byte are left alone: the runtime shares static memory for
// them.
func String(s string) {
	if len(s) > 1 {
		clear(unsafe.Slice(unsafe.StringData(s), len(s)))
	}
}
