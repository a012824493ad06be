package store

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// keyctlQuota describes the kernel keyring quota of the current user, from
// /proc/key-users ("uid: usage nkeys/nikeys qnkeys/maxkeys qnbytes/maxbytes"):
// "19940 of 20000 bytes and 14 of 200 keys in use". Where that file cannot
// be read it names the usual limits.
func keyctlQuota() string {
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
	return "usually 20000 bytes and 200 keys per user"
}
