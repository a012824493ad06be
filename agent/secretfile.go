package agent

import "github.com/mcpkey/mcpkey/internal/safefile"

// ReadSecretFile reads a client secret (or passphrase) from a file that
// group and others cannot read (see safefile.ReadSecret).
func ReadSecretFile(path string) (string, error) { return safefile.ReadSecret(path) }
