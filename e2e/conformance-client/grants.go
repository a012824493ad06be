package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// The extension scenarios for grants without a browser (issue 15 §2–§4):
// auth/client-credentials-basic, auth/client-credentials-jwt,
// auth/wif-jwt-bearer and auth/enterprise-managed-authorization. The
// runner's context carries the credentials; they go into 0600 files and
// mcpkey's config or login flags, never argv. Every protocol step is
// mcpkey's.

// grantContext is the part of MCP_CONFORMANCE_CONTEXT these scenarios use.
type grantContext struct {
	PrivateKeyPEM    string `json:"private_key_pem"`    // client-credentials-jwt
	SigningAlgorithm string `json:"signing_algorithm"`  // client-credentials-jwt
	ValidJWT         string `json:"valid_jwt"`          // wif-jwt-bearer: the workload's token
	IdPClientID      string `json:"idp_client_id"`      // enterprise: mcpkey's client at the IdP
	IdPIDToken       string `json:"idp_id_token"`       // enterprise: the user's sign-in
	IdPIssuer        string `json:"idp_issuer"`         // enterprise
	IdPTokenEndpoint string `json:"idp_token_endpoint"` // enterprise (mcpkey discovers it)
}

// grantLogin returns the `mcpkey login` arguments of a grant scenario
// (nil for the others), writing the files and config they name into dir.
func grantLogin(scenario string, sc scenarioContext, dir, serverURL string) ([]string, error) {
	file := func(name, content string) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, []byte(content), 0o600)
	}
	switch scenario {
	case "auth/client-credentials-basic":
		f, err := file("client-secret", sc.ClientSecret)
		return []string{"login", serverURL, "--grant", "client_credentials", "--client-id", sc.ClientID, "--client-secret-file", f}, err
	case "auth/client-credentials-jwt":
		f, err := file("client-key.pem", sc.PrivateKeyPEM)
		return []string{"login", serverURL, "--grant", "client_credentials", "--client-id", sc.ClientID,
			"--client-key-file", f, "--client-key-alg", sc.SigningAlgorithm}, err
	case "auth/wif-jwt-bearer":
		f, err := file("workload-token", sc.ValidJWT)
		return []string{"login", serverURL, "--grant", "jwt_bearer", "--client-id", sc.ClientID, "--assertion-file", f}, err
	case "auth/enterprise-managed-authorization":
		secret, err := file("client-secret", sc.ClientSecret)
		if err != nil {
			return nil, err
		}
		idToken, err := file("idp-id-token", sc.IdPIDToken)
		if err != nil {
			return nil, err
		}
		conf := fmt.Sprintf("[servers.conformance]\nurl = %s\ngrant = \"enterprise\"\nidp = \"conformance-idp\"\n"+
			"client_id = %s\nclient_secret_file = %s\n\n"+
			"[idps.conformance-idp]\nissuer = %s\nclient_id = %s\nid_token_file = %s\n",
			strconv.Quote(serverURL), strconv.Quote(sc.ClientID), strconv.Quote(secret),
			strconv.Quote(sc.IdPIssuer), strconv.Quote(sc.IdPClientID), strconv.Quote(idToken))
		cdir := filepath.Join(dir, "config", "mcpkey")
		if err := os.MkdirAll(cdir, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(cdir, "config.toml"), []byte(conf), 0o600); err != nil {
			return nil, err
		}
		return []string{"login", "conformance"}, nil
	}
	return nil, nil
}
