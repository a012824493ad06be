package policy

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"
)

// AuditReadOptions configures ReadAudit.
type AuditReadOptions struct {
	// Follow keeps reading lines appended later (and across rotations)
	// until ctx ends, as tail -F does.
	Follow bool
	// Poll is how often a followed file is checked for growth; 0 means
	// 500 ms.
	Poll time.Duration
	// Keep is how many rotated files to read first; 0 means
	// DefaultAuditKeep.
	Keep int
}

// ReadAudit calls fn with every record of the audit log at path, oldest
// first: the rotated files (path.N … path.1), then path itself. Lines that
// are not valid records are skipped. With opts.Follow it then waits for new
// lines until ctx ends (returning nil) or fn returns an error.
func ReadAudit(ctx context.Context, path string, opts AuditReadOptions, fn func(r AuditRecord, line []byte) error) error {
	keep := cmp.Or(opts.Keep, DefaultAuditKeep)
	for i := keep; i >= 1; i-- {
		f, err := os.Open(path + "." + strconv.Itoa(i))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		_, err = readLines(f, nil, fn)
		f.Close()
		if err != nil {
			return err
		}
	}
	f, err := os.Open(path)
	if err != nil && !(opts.Follow && errors.Is(err, fs.ErrNotExist)) {
		return err
	}
	var partial []byte
	if f != nil {
		if partial, err = readLines(f, nil, fn); err != nil {
			f.Close()
			return err
		}
	}
	if !opts.Follow {
		if f != nil {
			f.Close()
		}
		return nil
	}
	t := time.NewTicker(cmp.Or(opts.Poll, 500*time.Millisecond))
	defer t.Stop()
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if f != nil {
			if partial, err = readLines(f, partial, fn); err != nil {
				return err
			}
		}
		// Rotated (or created)? Finish the old file, then start on the new.
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		if f != nil {
			if cur, err := f.Stat(); err == nil && os.SameFile(cur, fi) {
				continue
			}
			if partial, err = readLines(f, partial, fn); err != nil {
				return err
			}
			f.Close()
		}
		if f, err = os.Open(path); err != nil {
			f = nil
			continue
		}
		partial = nil
		if partial, err = readLines(f, nil, fn); err != nil {
			return err
		}
	}
}

// readLines reads r to its current end, calling fn for each complete line;
// it returns an incomplete last line to be continued on the next call.
func readLines(r io.Reader, partial []byte, fn func(AuditRecord, []byte) error) ([]byte, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		chunk, err := br.ReadBytes('\n')
		partial = append(partial, chunk...)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return partial, nil
			}
			return partial, err
		}
		line := bytes.TrimSpace(partial)
		partial = partial[:0]
		var rec AuditRecord
		if len(line) == 0 || json.Unmarshal(line, &rec) != nil || rec.Event == "" {
			continue
		}
		if err := fn(rec, bytes.Clone(line)); err != nil {
			return nil, err
		}
	}
}
