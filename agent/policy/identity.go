package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Who policy judges. A request's peer is often mcpkey itself (mcpkey token,
// bridge, exec, proxy): judging its path would let every program that runs
// mcpkey share one approval, and would let a program a deny rule names
// through by running mcpkey. So:
//
//   - the principal is the program that asked: the peer, or, when the peer
//     is a launcher (this mcpkey executable or one named mcpkey), its
//     parent, the program that ran it (`mcpkey exec` included: the
//     program exec runs is its child and gets the token from it);
//   - deny rules apply to the whole chain: the peer and every parent up to
//     maxParents;
//   - allow rules match the principal's executable;
//   - a remembered answer binds to the principal's executable path, device,
//     inode and content hash, and for an interpreter to its script (or,
//     without a script file, its whole command line).

// callerMemo is what judge learnt about one caller.
type callerMemo struct {
	describeOnce, identityOnce sync.Once
	described, principal       Caller
	identity                   string
}

// judge returns c described (its command line and parents read from
// /proc), its principal and, when withIdentity is set, the principal's
// identity (see identityOf). They are read once per caller context and kept
// in c's memo: /proc and a fingerprint cost some 100 µs, too much for every
// token.get of a connection.
func (po *Policy) judge(ctx context.Context, c Caller, withIdentity bool) (described, principal Caller, id string) {
	m := memoFrom(ctx)
	if m == nil {
		m = new(callerMemo)
	}
	m.describeOnce.Do(func() {
		if c.PID <= 0 && c.FindPID != nil {
			c.PID = c.FindPID()
		}
		m.described = DescribeCaller(c)
		m.principal = po.principal(m.described)
	})
	if withIdentity {
		m.identityOnce.Do(func() { m.identity = po.identityOf(m.principal) })
	}
	return m.described, m.principal, m.identity
}

// principal returns the program policy judges for c (described: see
// DescribeCaller).
func (po *Policy) principal(c Caller) Caller {
	if c.PID <= 0 || len(c.Parents) == 0 || !po.isLauncher(c) {
		return c
	}
	pp := c.Parents[0]
	return Caller{Transport: c.Transport, UID: c.UID, PID: pp.PID, Exe: pp.Exe, Cmdline: pp.Cmdline, Parents: c.Parents[1:]}
}

// isLauncher reports whether c runs mcpkey: named mcpkey, or the same file
// as the agent's executable.
func (po *Policy) isLauncher(c Caller) bool {
	if base := filepath.Base(c.Exe); base == "mcpkey" || base == "mcpkey.exe" {
		return true
	}
	self, err := po.selfID()
	if err != nil {
		return false
	}
	id, err := exeID(c.PID)
	return err == nil && id == self
}

// deniedBy returns the executable in c's chain (c and its parents) that a
// deny glob matches, or "".
func deniedBy(globs []string, c Caller) string {
	if matchAny(globs, c.Exe) {
		return c.Exe
	}
	for _, p := range c.Parents {
		if p.Exe != "" && matchAny(globs, p.Exe) {
			return p.Exe
		}
	}
	return ""
}

// interpreter matches the executables whose behaviour is their script.
var interpreter = regexp.MustCompile(`^(python[0-9.]*|pypy[0-9.]*|node(js)?|deno|bun|ruby[0-9.]*|perl[0-9.]*|php[0-9.]*|lua[0-9.]*|R|Rscript|bash|sh|dash|zsh|ksh|mksh|fish|tclsh[0-9.]*|wish[0-9.]*|pwsh|osascript|java)$`)

// identityOf is what an answer is remembered for: for a local process its
// executable's path, device, inode and content hash, plus for an
// interpreter its script's (or its command line); the transport and client
// name for WebSocket and proxy callers without a process; the pid as a
// last resort.
func (po *Policy) identityOf(c Caller) string {
	if c.PID <= 0 || c.Exe == "" {
		return callerIdentity(c)
	}
	var b strings.Builder
	b.WriteString("exe:" + c.Exe)
	if fp, err := po.fp.of("/proc/" + strconv.Itoa(c.PID) + "/exe"); err == nil {
		b.WriteString("@" + fp)
	} else {
		fmt.Fprintf(&b, "@pid:%d", c.PID) // unreadable: this process only
	}
	if interpreter.MatchString(filepath.Base(c.Exe)) {
		if script := scriptArg(c.Cmdline); script != "" {
			p := script
			if !path.IsAbs(p) {
				p = "/proc/" + strconv.Itoa(c.PID) + "/cwd/" + p
			}
			if fp, err := po.fp.of(p); err == nil {
				b.WriteString(" script:" + script + "@" + fp)
				return b.String()
			}
		}
		b.WriteString(" cmdline:" + strings.Join(c.Cmdline, "\x00"))
	}
	return b.String()
}

// scriptArg is the first argument after the interpreter that is not an
// option: the script, for `python3 -u app.py` or `node --inspect app.js`.
func scriptArg(cmdline []string) string {
	for _, a := range cmdline[min(1, len(cmdline)):] {
		if a == "--" {
			continue
		}
		if !strings.HasPrefix(a, "-") {
			return a
		}
		if a == "-c" || a == "-e" || a == "-m" {
			return "" // code or a module, not a file
		}
	}
	return ""
}

// fingerprints caches files' content hashes by device, inode, size and
// times, so a program's identity costs a stat once its file was hashed.
type fingerprints struct {
	mu sync.Mutex
	m  map[fpKey]string
}

type fpKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

// maxFingerprints bounds the cache; it is emptied when full.
const maxFingerprints = 256

// of returns "DEV:INO:SHA256" for the regular file at p.
func (f *fingerprints) of(p string) (string, error) {
	file, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer file.Close()
	k, err := statKey(file)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	sum, ok := f.m[k]
	f.mu.Unlock()
	if !ok {
		h := sha256.New()
		if _, err := io.Copy(h, file); err != nil {
			return "", fmt.Errorf("hash %s: %w", p, err)
		}
		sum = hex.EncodeToString(h.Sum(nil))
		f.mu.Lock()
		if f.m == nil || len(f.m) >= maxFingerprints {
			f.m = make(map[fpKey]string)
		}
		f.m[k] = sum
		f.mu.Unlock()
	}
	return fmt.Sprintf("%d:%d:%s", k.dev, k.ino, sum), nil
}
