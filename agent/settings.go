package agent

import "github.com/mcpkey/mcpkey/agent/config"

// The config file's types live in package config; these names keep the
// agent's API as it was.
type (
	Settings       = config.Settings
	ServerSettings = config.ServerSettings
	IssuerSettings = config.IssuerSettings
	SettingsError  = config.SettingsError
)

// DefaultLoginWait is login_wait's default (config.DefaultLoginWait).
const DefaultLoginWait = config.DefaultLoginWait

// LoadSettings reads and validates the config file at path (config.Load).
func LoadSettings(path string) (*Settings, error) { return config.Load(path) }

// ParseSettings parses a config file's content (config.Parse).
func ParseSettings(path string, data []byte) (*Settings, error) { return config.Parse(path, data) }

// CanonicalServerURL is config.CanonicalServerURL.
func CanonicalServerURL(s string) (string, error) { return config.CanonicalServerURL(s) }

func redactURL(s string) string { return config.RedactURL(s) }
