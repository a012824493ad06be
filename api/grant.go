package api

import (
	"fmt"
	"strings"
)

// Grants: how a session gets its access tokens (SessionInfo.Grant,
// LoginRequest.Grant, the config's grant key).
const (
	// GrantAuthorizationCode: a person signs in through the browser
	// (OAuth 2.1 authorization code with PKCE, or the device grant); the
	// session is renewed with its refresh token. The default ("").
	GrantAuthorizationCode = ""
	// GrantClientCredentials: the client authenticates as itself
	// (client_secret_basic or private_key_jwt) with the client_credentials
	// grant; no person, no refresh token.
	GrantClientCredentials = "client_credentials"
	// GrantJWTBearer: workload identity federation, the workload's own
	// token (a Kubernetes service-account token, a CI job's OIDC token)
	// traded with the RFC 7523 JWT bearer grant.
	GrantJWTBearer = "jwt_bearer"
	// GrantEnterprise: enterprise-managed authorization, the user's
	// sign-in at the company's identity provider exchanged there for an
	// identity assertion (RFC 8693, ID-JAG) that the MCP server's
	// authorization server trades for an access token (RFC 7523).
	GrantEnterprise = "enterprise"
)

// Grants lists the grant names the config and `mcpkey login --grant`
// accept, the browser sign-in first.
func Grants() []string {
	return []string{"authorization_code", GrantClientCredentials, GrantJWTBearer, GrantEnterprise}
}

// GrantLabel is a grant's name as ls, status and the tray show it.
func GrantLabel(grant string) string {
	switch grant {
	case GrantAuthorizationCode:
		return "browser"
	case GrantClientCredentials:
		return "client credentials"
	case GrantJWTBearer:
		return "workload identity"
	case GrantEnterprise:
		return "enterprise"
	}
	return grant
}

// GrantLogin is a login's grant without a browser, as `mcpkey login` flags
// give it. Secrets travel in it only over the agent's socket (the CLI reads
// them from files), never in argv.
type GrantLogin struct {
	// Mode is GrantClientCredentials, GrantJWTBearer or GrantEnterprise,
	// or "authorization_code" for the browser whatever the config or the
	// session says; "" leaves the choice to the config, else the session.
	Mode string `json:"mode,omitempty"`
	// ClientKey is the PEM private key of a private_key_jwt client (RFC
	// 7523 client assertion); ClientKeyAlg its JWS algorithm ("" derives
	// it from the key). The agent keeps the key with the session in the
	// store. ClientSecret in LoginRequest serves client_secret_basic.
	ClientKey    string `json:"client_key,omitempty"`
	ClientKeyAlg string `json:"client_key_alg,omitempty"`
	// AssertionFile is the workload token's file (absolute path), read
	// again for every grant (GrantJWTBearer).
	AssertionFile string `json:"assertion_file,omitempty"`
	// IdP is the configured identity provider ([idps.NAME]) whose sign-in
	// GrantEnterprise exchanges.
	IdP string `json:"idp,omitempty"`
	// Unattended is set by the agent for a grant it runs for a token
	// request, with nobody to sign in: no browser opens. Never on the wire.
	Unattended bool `json:"-"`
}

// IsZero reports whether g chooses nothing.
func (g GrantLogin) IsZero() bool { return g == GrantLogin{} }

// GrantCounts writes Status.Grants for people: "2 client credentials, 1
// workload identity" (in the order of Grants), or "" when empty.
func GrantCounts(counts map[string]int) string {
	var parts []string
	for _, g := range Grants() {
		if n := counts[g]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, GrantLabel(g)))
		}
	}
	return strings.Join(parts, ", ")
}

// JWSAlgs are the algorithms a private_key_jwt client key may sign with
// (client_key_alg in the config, --client-key-alg).
var JWSAlgs = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
