package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mcpkey/mcpkey/api"
	"github.com/mcpkey/mcpkey/internal/safefile"
)

// LoginGrant builds a login's grant from `mcpkey login` flags: mode as the
// config spells it ("authorization_code" and "" are the browser), the
// private_key_jwt key read here from keyFile (the agent parses it) (a 0600 file; the key goes to
// the agent over its socket, never in argv), the workload token's file made
// absolute (the agent reads it at every grant).
func LoginGrant(mode, keyFile, keyAlg, assertionFile, idp string) (api.GrantLogin, error) {
	g := api.GrantLogin{ClientKeyAlg: keyAlg, IdP: idp}
	switch mode {
	case "":
	case "authorization_code", api.GrantClientCredentials, api.GrantJWTBearer, api.GrantEnterprise:
		g.Mode = mode
	default:
		return g, fmt.Errorf("unknown grant %q\nhint: --grant takes %s", mode, strings.Join(api.Grants(), ", "))
	}
	need := func(flag, grant string, set bool) error {
		if set && g.Mode != grant {
			return fmt.Errorf("%s is used only with --grant %s", flag, grant)
		}
		return nil
	}
	if err := errors.Join(need("--client-key-file", api.GrantClientCredentials, keyFile != "" && g.Mode != api.GrantEnterprise),
		need("--client-key-alg", api.GrantClientCredentials, keyAlg != "" && g.Mode != api.GrantEnterprise),
		need("--assertion-file", api.GrantJWTBearer, assertionFile != ""),
		need("--idp", api.GrantEnterprise, idp != "")); err != nil {
		return g, err
	}
	if keyAlg != "" && !slices.Contains(api.JWSAlgs, keyAlg) {
		return g, fmt.Errorf("--client-key-alg %q: expected one of %s", keyAlg, strings.Join(api.JWSAlgs, ", "))
	}
	if keyFile != "" {
		k, err := safefile.ReadSecret(keyFile)
		if err != nil {
			return g, err
		}
		g.ClientKey = k
	}
	if assertionFile != "" {
		abs, err := filepath.Abs(assertionFile)
		if err != nil {
			return g, err
		}
		if _, err := os.Stat(abs); err != nil {
			return g, fmt.Errorf("--assertion-file: %w", err)
		}
		g.AssertionFile = abs
	}
	return g, nil
}
