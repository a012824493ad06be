//go:build !unix && !windows

package browser

// defaultCommand has no default browser to offer here; Open then returns an
// error wrapping errors.ErrUnsupported.
func defaultCommand(string) []string { return nil }
