package ipc

import (
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
// that only tracks strings, so it costs no allocation whatever b holds;
// malformed JSON is left for the decoder to refuse.
//
// Gap: github.com/segmentio/encoding/json, the decoder behind the protocol
// and the launchers, recurses once per level with no limit (encoding/json
// stops at 10000), so one 1 MiB line of "[" grew the agent by 400 MB. Call
// CheckDepth on untrusted bytes before decoding them.
func CheckDepth(b []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if depth++; depth > max {
				return fmt.Errorf("%w (%d levels)", ErrTooDeep, max)
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return nil
}
