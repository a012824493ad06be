package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// DefaultChunkLimit is the item size Open applies to every keyring backend:
// below Windows Credential Manager's 2560-byte blob cap (danieljoos/wincred#18)
// with room to spare.
const DefaultChunkLimit = 2000

// MinChunkLimit is the smallest limit Chunked accepts; a manifest must fit.
const MinChunkLimit = 256

// chunkMagic starts every manifest. A caller's value that happens to start
// with it is stored chunked too, so a manifest is never ambiguous.
const chunkMagic = "\x00mcpkey-chunks v1 "

// partSep separates a key from its part suffix: key + "#" + gen + "." + i.
// Keys never contain it (Chunked rejects them), so Keys can hide parts.
const partSep = "#"

// chunked splits large values over several items of inner.
type chunked struct {
	inner Store
	limit int
	// mu orders writers against readers in this process, so a Get never
	// sees a manifest whose parts a concurrent Put has already replaced.
	mu sync.RWMutex
}

var _ Store = (*chunked)(nil)

// Chunked returns a Store that keeps every item it writes to inner at most
// limit bytes (limit is raised to MinChunkLimit if lower). A larger value is
// written as parts "key#<gen>.<i>" followed by a small manifest under key
// naming the generation, part count, length and SHA-256; Get reassembles and
// verifies it. Parts of a new generation are written before the manifest
// and the old generation is deleted after it, so an interrupted Put leaves
// the previous value readable. Keys hides part items; keys containing '#'
// are rejected with ErrInvalidKey. Backend() is inner's.
func Chunked(inner Store, limit int) Store {
	if limit < MinChunkLimit {
		limit = MinChunkLimit
	}
	return &chunked{inner: inner, limit: limit}
}

func (c *chunked) Backend() string { return c.inner.Backend() }

// Notice forwards the inner store's notice (see store.Notice).
func (c *chunked) Notice() string { return Notice(c.inner) }

func checkChunkKey(op, key string) error {
	if strings.Contains(key, partSep) {
		return fmt.Errorf("%s: %w: %q: '#' is reserved", op, ErrInvalidKey, key)
	}
	return nil
}

// manifest describes a chunked value.
type manifest struct {
	gen    string // random hex, names this generation's parts
	parts  int
	length int
	sum    [sha256.Size]byte
}

func (m manifest) encode() []byte {
	return fmt.Appendf(nil, "%s%s %d %d %x", chunkMagic, m.gen, m.parts, m.length, m.sum[:])
}

func (m manifest) partKey(key string, i int) string {
	return key + partSep + m.gen + "." + strconv.Itoa(i)
}

func isManifest(v []byte) bool { return bytes.HasPrefix(v, []byte(chunkMagic)) }

func parseManifest(key string, v []byte) (manifest, error) {
	var m manifest
	fields := strings.Fields(string(v[len(chunkMagic):]))
	bad := func(why string) (manifest, error) {
		return manifest{}, fmt.Errorf("%w: %s: chunk manifest %s", ErrCorrupt, key, why)
	}
	if len(fields) != 4 {
		return bad("has the wrong number of fields")
	}
	m.gen = fields[0]
	if _, err := hex.DecodeString(m.gen); err != nil || m.gen == "" {
		return bad("has a bad generation")
	}
	var err error
	if m.parts, err = strconv.Atoi(fields[1]); err != nil || m.parts < 1 || m.parts > 4096 {
		return bad("has a bad part count")
	}
	if m.length, err = strconv.Atoi(fields[2]); err != nil || m.length < 0 {
		return bad("has a bad length")
	}
	sum, err := hex.DecodeString(fields[3])
	if err != nil || len(sum) != sha256.Size {
		return bad("has a bad checksum field")
	}
	copy(m.sum[:], sum)
	return m, nil
}

func (c *chunked) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkChunkKey("get", key); err != nil {
		return nil, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, err := c.inner.Get(ctx, key)
	if err != nil || !isManifest(v) {
		return v, err
	}
	m, err := parseManifest(key, v)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	out := make([]byte, 0, m.length)
	for i := range m.parts {
		p, err := c.inner.Get(ctx, m.partKey(key, i))
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("get %s: %w: %s: part %d of %d is missing", key, ErrCorrupt, key, i+1, m.parts)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p...)
		clear(p) // a piece of a secret: only out keeps it
	}
	sum := sha256.Sum256(out)
	if len(out) != m.length || subtle.ConstantTimeCompare(sum[:], m.sum[:]) != 1 {
		return nil, fmt.Errorf("get %s: %w: %s: reassembled parts do not match the manifest", key, ErrCorrupt, key)
	}
	return out, nil
}

// oldManifestLocked reads the manifest currently under key, if any.
func (c *chunked) oldManifestLocked(ctx context.Context, key string) (*manifest, error) {
	v, err := c.inner.Get(ctx, key)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) {
		return nil, nil // an unreadable item is replaced or removed as is
	}
	if err != nil {
		return nil, err
	}
	if !isManifest(v) {
		clear(v) // the value being replaced, a token: leave no copy behind
		return nil, nil
	}
	m, err := parseManifest(key, v)
	if err != nil {
		// A broken manifest is replaced; its parts cannot be found.
		return nil, nil
	}
	return &m, nil
}

func (c *chunked) Put(ctx context.Context, key string, value []byte) error {
	return c.replace(ctx, "put", key, func() error {
		if len(value) <= c.limit && !isManifest(value) {
			return c.inner.Put(ctx, key, value)
		}
		gen := make([]byte, 8)
		_, _ = rand.Read(gen)
		m := manifest{
			gen:    hex.EncodeToString(gen),
			parts:  (len(value) + c.limit - 1) / c.limit,
			length: len(value),
			sum:    sha256.Sum256(value),
		}
		for i := range m.parts {
			part := value[i*c.limit : min((i+1)*c.limit, len(value))]
			if err := c.inner.Put(ctx, m.partKey(key, i), part); err != nil {
				c.deletePartsLocked(ctx, key, m)
				return err
			}
		}
		if err := c.inner.Put(ctx, key, m.encode()); err != nil {
			c.deletePartsLocked(ctx, key, m)
			return err
		}
		return nil
	})
}

// replace runs write (key's Put or Delete on the inner store) under the
// lock, then removes the parts of the chunked value it replaced.
func (c *chunked) replace(ctx context.Context, op, key string, write func() error) error {
	if err := checkChunkKey(op, key); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old, err := c.oldManifestLocked(ctx, key)
	if err != nil {
		return err
	}
	if err := write(); err != nil {
		return err
	}
	if old != nil {
		c.deletePartsLocked(ctx, key, *old)
	}
	return nil
}

// deletePartsLocked removes a generation's parts, best effort: a leftover
// part is hidden by Keys and overwritten by no one, but harmless.
func (c *chunked) deletePartsLocked(ctx context.Context, key string, m manifest) {
	for i := range m.parts {
		_ = c.inner.Delete(ctx, m.partKey(key, i))
	}
}

func (c *chunked) Delete(ctx context.Context, key string) error {
	return c.replace(ctx, "delete", key, func() error { return c.inner.Delete(ctx, key) })
}

func (c *chunked) Keys(ctx context.Context, prefix string) ([]string, error) {
	keys, err := c.inner.Keys(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := keys[:0]
	for _, k := range keys {
		if !strings.Contains(k, partSep) {
			out = append(out, k)
		}
	}
	return out, nil
}
