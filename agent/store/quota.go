package store

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Usage returns how much of its quota s uses, for stores that have one
// (the kernel keyring: "1585 of 20000 bytes and 9 of 200 keys in use"),
// else "".
func Usage(s Store) string {
	if u, ok := s.(interface{ Usage() string }); ok {
		return u.Usage()
	}
	return ""
}

func (k *keyringStore) Usage() string {
	if k.name != BackendKeyctl {
		return ""
	}
	return keyctlUsage()
}

// Usage forwards the inner store's usage (see store.Usage).
func (c *chunked) Usage() string { return Usage(c.inner) }

// keyctlQuota describes the kernel keyring quota of the current user for
// an error message, naming the usual limits where keyctlUsage cannot tell.
func keyctlQuota() string {
	if u := keyctlUsage(); u != "" {
		return u
	}
	return "usually 20000 bytes and 200 keys per user"
}

// keyctlUsage reads the current user's kernel keyring quota from
// /proc/key-users ("uid: usage nkeys/nikeys qnkeys/maxkeys qnbytes/maxbytes"):
// "19940 of 20000 bytes and 14 of 200 keys in use", or "".
func keyctlUsage() string {
	b, err := os.ReadFile("/proc/key-users")
	if err == nil {
		prefix := strconv.Itoa(os.Geteuid()) + ":"
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) != 5 || f[0] != prefix {
				continue
			}
			keys, maxKeys, ok1 := strings.Cut(f[3], "/")
			bytes, maxBytes, ok2 := strings.Cut(f[4], "/")
			if ok1 && ok2 {
				return fmt.Sprintf("%s of %s bytes and %s of %s keys in use", bytes, maxBytes, keys, maxKeys)
			}
		}
	}
	return ""
}
