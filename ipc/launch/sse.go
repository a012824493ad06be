package launch

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"time"
)

// sseEvent is one server-sent event.
type sseEvent struct {
	ID    string
	hasID bool
	Name  string
	Data  []byte
	Retry time.Duration
}

var errEventTooLarge = errors.New("server-sent event too large")

// readSSE parses an event stream (WHATWG HTML §9.2.6) and calls fn for each
// dispatched event until fn returns false, the stream ends (nil) or fails.
// Events larger than max bytes are an error.
//
// Hand-written: go-sdk v1.8.0's event scanner (scanEventsLimited) is
// unexported.
func readSSE(r io.Reader, max int, fn func(ev sseEvent) bool) error {
	br := bufio.NewReaderSize(r, 32<<10)
	var (
		ev      sseEvent
		data    []byte
		hasData bool
		size    int
	)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: gather it whole.
			buf := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(buf) > max {
					return errEventTooLarge
				}
				line, err = br.ReadSlice('\n')
				buf = append(buf, line...)
			}
			line = buf
		}
		if err != nil && len(line) == 0 {
			if err == io.EOF {
				return nil // an unterminated event is discarded, as the spec says
			}
			return err
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		size += len(line)
		if size > max {
			return errEventTooLarge
		}
		if len(line) == 0 {
			// Events with data are dispatched; so are data-less ones that
			// set an id (priming events), for resumption.
			if hasData || ev.hasID {
				ev.Data = data
				if !fn(ev) {
					return nil
				}
			}
			ev, data, hasData, size = sseEvent{}, nil, false, 0
			continue
		}
		if line[0] == ':' {
			continue // comment
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		case "event":
			ev.Name = string(value)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				ev.ID, ev.hasID = string(value), true
			}
		case "retry":
			if n, err := strconv.ParseInt(string(value), 10, 64); err == nil && n >= 0 {
				ev.Retry = time.Duration(n) * time.Millisecond
			}
		}
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}
