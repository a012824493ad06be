package agent

import "github.com/mcpkey/mcpkey/internal/userdirs"

// DefaultConfigPath is the config file's default location (see
// userdirs.ConfigPath).
func DefaultConfigPath() (string, error) { return userdirs.ConfigPath() }

// DefaultStateDir is where mcpkey keeps state such as the audit log (see
// userdirs.StateDir).
func DefaultStateDir() (string, error) { return userdirs.StateDir() }

// DefaultDataDir is where mcpkey keeps data files such as the file backend's
// encrypted keyring (see userdirs.DataDir).
func DefaultDataDir() (string, error) { return userdirs.DataDir() }
