// Package oauth is mcpkey's MCP authorization client, protocol only: an
// *http.Client in, plain structs out; no storage, no UI, no goroutines that
// outlive a call. The agent composes it: Probe → Discover → Register →
// (NewFlow, callback, Exchange) → Refresh / Revoke.
//
// It follows ../shared/design/spec-checklist.md item by item. It reuses the
// official go-sdk's oauthex primitives where they meet the spec, and writes
// its own code where they do not; each such place names the gap in a comment.
//
// # References
//
//   - RFC 6749 OAuth 2.0, OAuth 2.1 draft
//   - RFC 7636 PKCE; RFC 7591 Dynamic Client Registration; RFC 7009 Revocation
//   - RFC 8414 AS metadata; RFC 9728 Protected Resource Metadata
//   - RFC 8707 Resource Indicators; RFC 8252 native apps; RFC 8628 device grant
//   - RFC 9207 iss in the authorization response; RFC 9700 security BCP
//   - MCP authorization, 2025-03-26 … 2026-07-28
package oauth

import (
	"time"

	"github.com/mcpkey/mcpkey/agent/internal/wipe"
)

// Challenge is what a 401 or 403 answer's WWW-Authenticate Bearer challenge
// said.
type Challenge struct {
	Status           int      // HTTP status that carried it
	ResourceMetadata string   // resource_metadata URL, if any
	Scopes           []string // scope parameter, split on spaces
	Error            string   // error parameter ("insufficient_scope", "invalid_token")
	// DPoP: the answer challenged with the DPoP scheme (RFC 9449 §7.1),
	// too or only: the resource asks for key-bound tokens.
	DPoP bool
}

// AuthServer is validated authorization-server metadata (RFC 8414 / OIDC).
type AuthServer struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint,omitempty"`
	RevocationEndpoint                string   `json:"revocation_endpoint,omitempty"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint,omitempty"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported,omitempty"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	GrantTypesSupported               []string `json:"grant_types_supported,omitempty"`
	// IssParameterSupported is authorization_response_iss_parameter_supported
	// (RFC 9207).
	IssParameterSupported bool `json:"authorization_response_iss_parameter_supported,omitempty"`
	// ClientIDMetadataDocumentSupported is
	// client_id_metadata_document_supported (CIMD).
	ClientIDMetadataDocumentSupported bool `json:"client_id_metadata_document_supported,omitempty"`
	// DPoPSigningAlgValuesSupported (RFC 9449 §5.1): the AS issues
	// DPoP-bound tokens, with proofs of these algorithms.
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
	// Legacy is true when the endpoints were not found in any metadata
	// document and are the 2025-03-26 defaults (<origin>/authorize, …).
	Legacy bool `json:"-"`
}

// Discovery is the outcome of discovery for one MCP server.
type Discovery struct {
	// ServerURL is the MCP endpoint that was probed.
	ServerURL string
	// Resource is the PRM "resource" string, verbatim; it is sent
	// byte-for-byte as the RFC 8707 resource parameter. For a 2025-03-26
	// server without PRM it is ServerURL.
	Resource string
	// ResourceMetadataURL is where the PRM came from ("" without PRM).
	ResourceMetadataURL string
	// ScopesSupported is the PRM scopes_supported.
	ScopesSupported []string
	// DPoPAlgs and DPoPRequired are the PRM's
	// dpop_signing_alg_values_supported and
	// dpop_bound_access_tokens_required (RFC 9728 §2).
	DPoPAlgs     []string
	DPoPRequired bool
	// AuthorizationServers lists the PRM's authorization_servers.
	AuthorizationServers []string
	// AS is the chosen authorization server's validated metadata.
	AS *AuthServer
	// Challenge is the probe's challenge (nil if the probe got none).
	Challenge *Challenge
}

// Client is a client registration with one authorization server. It is keyed
// by AS issuer and never used with another issuer.
type Client struct {
	Issuer                  string    `json:"issuer"`
	ClientID                string    `json:"client_id"`
	ClientSecret            string    `json:"client_secret,omitempty"`
	ClientSecretExpiresAt   int64     `json:"client_secret_expires_at,omitempty"`
	TokenEndpointAuthMethod string    `json:"token_endpoint_auth_method,omitempty"` // none, client_secret_basic, client_secret_post
	RedirectURIs            []string  `json:"redirect_uris,omitempty"`
	Source                  string    `json:"source"` // "preregistered", "cimd", "dcr"
	RegisteredAt            time.Time `json:"registered_at"`
	// Scope is the space-separated scope a dynamic registration asked for
	// (RFC 7591 §2); "" when none was sent (registrations made before
	// mcpkey sent one). Some servers (Ory Hydra) refuse any other scope.
	Scope string `json:"scope,omitempty"`
	// RegistrationClientURI and RegistrationAccessToken (a secret) manage
	// a dynamic registration (RFC 7592), when the server offers that.
	RegistrationClientURI   string `json:"registration_client_uri,omitempty"`
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	// Audience lists the audiences a dynamic registration asked for (the
	// "audience" metadata of Ory Hydra and others, which let a client ask
	// only for the audiences it was registered with; see WithAudience).
	Audience []string `json:"audience,omitempty"`
	// Key signs the client assertion of a private_key_jwt client
	// (grants.go); never stored with the registration.
	Key *ClientKey `json:"-"`
}

// TokenSet is what a token endpoint answered.
type TokenSet struct {
	AccessToken  string
	TokenType    string
	RefreshToken string // "" when none was issued (keep the old one on refresh)
	ExpiresAt    time.Time
	Scopes       []string // granted scopes ("" in the answer = requested scopes)
}

// Wipe overwrites the tokens in ts (decoded from an answer, so memory of this
// process's own) once the caller has kept its own copies: see package
// wipe. ts must not be used afterwards.
func (ts *TokenSet) Wipe() {
	wipe.String(ts.AccessToken)
	wipe.String(ts.RefreshToken)
}
