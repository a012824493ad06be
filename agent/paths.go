package agent

import "github.com/mcpkey/mcpkey/internal/userdirs"

// DefaultStateDir is where mcpkey keeps state such as the audit log (see
// userdirs.StateDir).
func DefaultStateDir() (string, error) { return userdirs.StateDir() }
