package ipc

import (
	"bytes"
	"errors"
	"fmt"
)

// MaxDepth is how deeply arrays and objects may nest in a message the
// agent decodes. Protocol messages nest at most four levels; 64 leaves room
// for growth.
const MaxDepth = 64

// ErrTooDeep is returned by CheckDepth.
var ErrTooDeep = errors.New("json nests deeper than allowed")

// CheckDepth reports ErrTooDeep (wrapped, naming the limit) when arrays and
// objects in b nest deeper than max. It is a single pass over the bytes
// that skips strings, so it costs no allocation whatever b holds;
// malformed JSON is left for the decoder to refuse.
//
// Gap: github.com/segmentio/encoding/json, the decoder behind the protocol
// (chosen over encoding/json for speed: see the README's Performance
// section), recurses once per nesting level with no limit (it grew the agent
// by 400 MB on one 1 MiB line of "["), and encoding/json, behind the
// launchers, accepts 10000 levels. Call CheckDepth on untrusted bytes before
// decoding them, so a deep message is refused cheaply and clearly.
func CheckDepth(b []byte, max int) error {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			// Skip the string in one jump per quote (bytes.IndexByte is
			// vectorised): large payloads are mostly string content.
			end := stringEnd(b, i)
			if end < 0 {
				return nil // unterminated: the decoder refuses it
			}
			i = end
		case '[', '{':
			if depth++; depth > max {
				return fmt.Errorf("%w (%d levels)", ErrTooDeep, max)
			}
		case ']', '}':
			depth--
		}
	}
	return nil
}

// stringEnd returns the index of the quote closing the string opened at
// b[open], or -1.
func stringEnd(b []byte, open int) int {
	for j := open + 1; ; j++ {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		j += k
		// Escaped when an odd run of backslashes precedes it.
		n := 0
		for p := j - 1; p > open && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return j
		}
	}
}
