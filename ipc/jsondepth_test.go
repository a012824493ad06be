package ipc

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckDepth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		deep bool
	}{
		{`{"a":[1,{"b":2}]}`, 3, false},
		{`{"a":[1,{"b":2}]}`, 2, true},
		{`[[[]]]`, 3, false},
		{`[[[[]]]]`, 3, true},
		// Brackets inside strings, escaped quotes included, do not count.
		{`{"s":"[[[[{{{{"}`, 1, false},
		{`{"s":"\"[[[[","t":"\\"}`, 1, false},
		{`{"s":"\\\"[[["}`, 1, false},
		{`{"s":"\\\\"}[[`, 1, true}, // an escaped backslash ends the string
		{`["x\\\\\\\"[[[[[", "]"]`, 1, false},
		{`{"s":"unterminated [[[[`, 1, false}, // left to the decoder
		{strings.Repeat("[", 1<<20), MaxDepth, true},
		{`{"a":1}}}}}]]]]{"b":{}}`, 2, false}, // malformed: left to the decoder
	} {
		err := CheckDepth([]byte(tc.in), tc.max)
		if (err != nil) != tc.deep || (err != nil && !errors.Is(err, ErrTooDeep)) {
			t.Errorf("CheckDepth(%.40q, %d) = %v, want too deep %v", tc.in, tc.max, err, tc.deep)
		}
	}
}
