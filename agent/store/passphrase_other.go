//go:build !unix

package store

// HidePassphrase does nothing here: on Windows the environment block other
// processes can read is the live one, which TakePassphrase clears.
func HidePassphrase() error { return nil }
