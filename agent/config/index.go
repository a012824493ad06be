package config

import (
	"bytes"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2/unstable"
)

// index records where every key and value of a document starts, from
// go-toml's parser (unstable.Parser; it is go-toml's exported AST, used
// here only for positions).
type index struct {
	src   []byte
	lines []int            // byte offset of each line's start
	at    map[string]place // by joinKey(key path); the first definition wins
	byKey map[int][]string // key offset → its longest key path
	byVal map[int][]string // value offset → its key path
}

type place struct {
	key, val int           // byte offsets of the key (or table header) and of the value
	kind     unstable.Kind // the value's kind; Table or ArrayTable for a header
}

func newIndex(src []byte) *index {
	ix := &index{src: src, lines: []int{0}, at: map[string]place{}, byKey: map[int][]string{}, byVal: map[int][]string{}}
	for i, c := range src {
		if c == '\n' {
			ix.lines = append(ix.lines, i+1)
		}
	}
	var p unstable.Parser
	p.Reset(src)
	var table []string
	arrays := map[string]int{}
	for p.NextExpression() { // stops at a syntax error, which decoding reports
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			key, off, _ := keyPath(e.Key())
			start := bytes.LastIndexByte(src[:off], '\n') + 1
			start += len(src[start:off]) - len(bytes.TrimLeft(src[start:off], " \t"))
			if e.Kind == unstable.ArrayTable {
				n := arrays[joinKey(key)]
				arrays[joinKey(key)]++
				key = append(key, "["+strconv.Itoa(n)+"]")
			}
			table = key
			ix.record(key, start, start, e.Kind)
		case unstable.KeyValue:
			ix.keyval(table, e)
		}
	}
	return ix
}

func keyPath(it unstable.Iterator) (key []string, start, end int) {
	start = -1
	for it.Next() {
		n := it.Node()
		if start < 0 {
			start = int(n.Raw.Offset)
		}
		end = int(n.Raw.Offset + n.Raw.Length)
		key = append(key, string(n.Data))
	}
	return key, start, end
}

func (ix *index) keyval(prefix []string, n *unstable.Node) {
	key, off, end := keyPath(n.Key())
	full := slices.Concat(prefix, key)
	for i := len(prefix) + 1; i < len(full); i++ { // dotted parents
		ix.record(full[:i], off, off, unstable.Table)
	}
	// The value starts after "=" and blanks.
	val := end + len(ix.src[end:]) - len(bytes.TrimLeft(ix.src[end:], " \t="))
	v := n.Value()
	ix.record(full, off, val, v.Kind)
	ix.value(full, v, val)
}

func (ix *index) value(key []string, v *unstable.Node, off int) {
	switch v.Kind {
	case unstable.Array:
		i := 0
		for it := v.Children(); it.Next(); {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			coff := off
			if c.Raw.Length > 0 {
				coff = int(c.Raw.Offset)
			}
			elem := sub(key, "["+strconv.Itoa(i)+"]")
			ix.record(elem, coff, coff, c.Kind)
			ix.value(elem, c, coff)
			i++
		}
	case unstable.InlineTable:
		for it := v.Children(); it.Next(); {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				ix.keyval(key, c)
			}
		}
	}
}

func (ix *index) record(key []string, keyOff, valOff int, kind unstable.Kind) {
	k := joinKey(key)
	if _, ok := ix.at[k]; !ok {
		ix.at[k] = place{key: keyOff, val: valOff, kind: kind}
	}
	ix.byKey[keyOff] = key
	ix.byVal[valOff] = key
}

// offset turns go-toml's 1-based line and byte column into a byte offset.
func (ix *index) offset(line, col int) int {
	if line < 1 || line > len(ix.lines) {
		return -1
	}
	return ix.lines[line-1] + col - 1
}

// lineCol turns a byte offset into a 1-based line and a column counted in
// characters, as editors count.
func (ix *index) lineCol(off int) (int, int) {
	off = min(max(off, 0), len(ix.src))
	n, _ := slices.BinarySearch(ix.lines, off+1) // lines[n-1] <= off
	return n, utf8.RuneCount(ix.src[ix.lines[n-1]:off]) + 1
}
