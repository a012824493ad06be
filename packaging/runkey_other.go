//go:build !windows

package packaging

// openRunKey returns nil: there is no registry here, so a Windows install
// can only be a dry run (or use an injected RunKey).
func openRunKey() RunKey { return nil }
