package config

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mcpkey/mcpkey/api"
)

// Grants without a browser (issue 15 §2–§4): the grant key of a
// [servers.NAME] table and its companions, and the [idps.NAME] tables that
// enterprise-managed authorization exchanges sign-ins at.

// GrantSettings are a server's grant keys, checked.
type GrantSettings struct {
	// Grant is api.GrantClientCredentials, api.GrantJWTBearer or
	// api.GrantEnterprise; "" is the browser sign-in.
	Grant string
	// ClientSecretRef is "secret:NAME": the client secret stored with
	// `mcpkey secret set` (ClientSecretFile is the other source).
	ClientSecretRef string
	// ClientKey is the private_key_jwt signing key: a PEM file (absolute)
	// or "secret:NAME". ClientKeyAlg is its JWS algorithm ("" derives it).
	ClientKey    string
	ClientKeyAlg string
	// WorkloadTokenFile or WorkloadTokenEnv is where a GrantJWTBearer
	// session reads the workload's token, again for every grant.
	WorkloadTokenFile string
	WorkloadTokenEnv  string
	// IdP names the [idps.NAME] table of a GrantEnterprise server.
	IdP string
}

// IdPSettings is one [idps.NAME] table: a company identity provider
// (OpenID Connect) whose sign-in enterprise-managed authorization exchanges
// for identity assertions (RFC 8693 token exchange, ID-JAG).
type IdPSettings struct {
	Name string
	// Issuer is the IdP's issuer URL; its metadata names the token endpoint.
	Issuer string
	// ClientID, ClientSecretFile and ClientSecretRef are mcpkey's client
	// at the IdP.
	ClientID         string
	ClientSecretFile string
	ClientSecretRef  string
	// Scopes asked for at the IdP sign-in (openid is always asked).
	Scopes []string
	// IDTokenFile or IDTokenEnv supply the sign-in's ID token from
	// elsewhere (single sign-on tooling that already holds one); read
	// again for every exchange.
	IDTokenFile string
	IDTokenEnv  string
}

// JWSAlgs are the client_key_alg values accepted (api.JWSAlgs).
var JWSAlgs = api.JWSAlgs

type idp struct {
	Issuer           string   `toml:"issuer"`
	ClientID         string   `toml:"client_id"`
	ClientSecretFile string   `toml:"client_secret_file"`
	ClientSecret     string   `toml:"client_secret"`
	Scopes           []string `toml:"scopes"`
	IDTokenFile      string   `toml:"id_token_file"`
	IDTokenEnv       string   `toml:"id_token_env"`
}

// serverGrant checks a server's grant keys into ss.GrantSettings; what
// depends on the other tables (idp) is checked by grant.
func (d *decoder) serverGrant(key []string, f server, ss *ServerSettings) {
	g := &ss.GrantSettings
	g.ClientKeyAlg, g.WorkloadTokenEnv, g.IdP = f.ClientKeyAlg, f.WorkloadTokenEnv, f.IdP
	if d.has(sub(key, "grant")...) {
		switch f.Grant {
		case "authorization_code":
		case api.GrantClientCredentials, api.GrantJWTBearer, api.GrantEnterprise:
			g.Grant = f.Grant
		default:
			d.at(sub(key, "grant"), true, "expected one of %s, got %q", strings.Join(api.Grants(), ", "), f.Grant)
		}
	}
	g.ClientSecretRef = d.secretRef(sub(key, "client_secret"), f.ClientSecret)
	if d.has(sub(key, "client_key")...) {
		if _, ok := SecretRef(f.ClientKey); ok {
			g.ClientKey = f.ClientKey
		} else {
			g.ClientKey = d.file(sub(key, "client_key"), f.ClientKey)
		}
	}
	if d.has(sub(key, "client_key_alg")...) && !slices.Contains(JWSAlgs, f.ClientKeyAlg) {
		d.at(sub(key, "client_key_alg"), true, "expected one of %s, got %q", strings.Join(JWSAlgs, ", "), f.ClientKeyAlg)
	}
	g.WorkloadTokenFile = d.file(sub(key, "workload_token_file"), f.WorkloadTokenFile)
	d.envName(sub(key, "workload_token_env"), f.WorkloadTokenEnv)

	// Each key belongs to its grants: a key the grant does not use is a
	// mistake the user should hear of, not a setting silently ignored.
	uses := map[string][]string{
		"client_key":          {api.GrantClientCredentials, api.GrantEnterprise},
		"client_key_alg":      {api.GrantClientCredentials, api.GrantEnterprise},
		"workload_token_file": {api.GrantJWTBearer},
		"workload_token_env":  {api.GrantJWTBearer},
		"idp":                 {api.GrantEnterprise},
	}
	for _, k := range slices.Sorted(maps.Keys(uses)) {
		if d.has(sub(key, k)...) && !slices.Contains(uses[k], g.Grant) {
			d.at(sub(key, k), false, "%s is used only with grant = %s", k, quoteJoin(uses[k]))
		}
	}
	secrets := 0
	for _, k := range []string{"client_secret_file", "client_secret", "client_key"} {
		if d.has(sub(key, k)...) {
			secrets++
		}
	}
	if secrets > 1 {
		d.at(key, false, "set only one of client_secret_file, client_secret and client_key")
	}
	if g.Grant == "" {
		return
	}
	if !d.has(sub(key, "client_id")...) {
		d.at(key, false, "grant = %q needs client_id (the client registered with the authorization server)", g.Grant)
	}
	if d.has(sub(key, "client_metadata_url")...) {
		d.at(sub(key, "client_metadata_url"), false, "client_metadata_url is used only with the browser sign-in")
	}
	switch g.Grant {
	case api.GrantClientCredentials:
		if secrets == 0 {
			d.at(key, false, "grant = \"client_credentials\" needs client_secret_file, client_secret = \"secret:NAME\" or client_key")
		}
	case api.GrantJWTBearer:
		if d.has(sub(key, "workload_token_file")...) == d.has(sub(key, "workload_token_env")...) {
			d.at(key, false, "grant = \"jwt_bearer\" needs exactly one of workload_token_file and workload_token_env")
		}
	case api.GrantEnterprise:
		if !d.has(sub(key, "idp")...) {
			d.at(key, false, "grant = \"enterprise\" needs idp (the name of an [idps.NAME] table)")
		}
	}
}

// grant checks what a server's grant refers to elsewhere in the file.
func (d *decoder) grant(key []string, ss ServerSettings, idps map[string]IdPSettings) {
	if ss.IdP == "" {
		return
	}
	if _, ok := idps[ss.IdP]; !ok {
		known := slices.Sorted(maps.Keys(idps))
		if len(known) == 0 {
			d.at(sub(key, "idp"), true, "no [idps.%s] table in this file", ss.IdP)
		} else {
			d.at(sub(key, "idp"), true, "no [idps.%s] table in this file (have %s)", ss.IdP, strings.Join(known, ", "))
		}
	}
}

func (d *decoder) idps(in map[string]idp) map[string]IdPSettings {
	if in == nil {
		return nil
	}
	out := make(map[string]IdPSettings, len(in))
	for name, f := range in {
		key := []string{"idps", name}
		if !serverNameRe.MatchString(name) {
			d.at(key, false, "invalid identity provider name %q (use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit)", name)
		}
		p := IdPSettings{Name: name, Issuer: f.Issuer, ClientID: f.ClientID, Scopes: f.Scopes, IDTokenEnv: f.IDTokenEnv,
			ClientSecretFile: d.file(sub(key, "client_secret_file"), f.ClientSecretFile),
			ClientSecretRef:  d.secretRef(sub(key, "client_secret"), f.ClientSecret),
			IDTokenFile:      d.file(sub(key, "id_token_file"), f.IDTokenFile),
		}
		for _, req := range []string{"issuer", "client_id"} {
			if !d.has(sub(key, req)...) {
				d.at(key, false, "missing %s", req)
			}
		}
		if d.has(sub(key, "issuer")...) {
			if u, err := url.Parse(f.Issuer); err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
				!(u.Scheme == "https" || u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
				d.at(sub(key, "issuer"), true, "expected an https issuer URL (http only on loopback) without query or fragment, got %q", RedactURL(f.Issuer))
			}
		}
		if d.has(sub(key, "client_secret_file")...) && d.has(sub(key, "client_secret")...) {
			d.at(key, false, "set only one of client_secret_file and client_secret")
		}
		if d.has(sub(key, "id_token_file")...) && d.has(sub(key, "id_token_env")...) {
			d.at(key, false, "set only one of id_token_file and id_token_env")
		}
		d.envName(sub(key, "id_token_env"), f.IDTokenEnv)
		for i, sc := range f.Scopes {
			if !validScope(sc) {
				d.at(sub(key, "scopes", "["+strconv.Itoa(i)+"]"), true, "invalid scope %q (no spaces, quotes or backslashes)", sc)
			}
		}
		out[name] = p
	}
	return out
}

// secretRef checks a key that names a stored secret: "secret:NAME" only.
// A literal value is refused: secrets are never written in the config.
func (d *decoder) secretRef(key []string, v string) string {
	if !d.has(key...) {
		return ""
	}
	if _, ok := SecretRef(v); !ok {
		d.at(key, false, "a client secret must not be written in the config\nhint: put it in a file and set client_secret_file = \"PATH\", or store it with `mcpkey secret set`")
		return ""
	}
	return v
}

func (d *decoder) envName(key []string, v string) {
	if d.has(key...) && !envNameRe.MatchString(v) {
		d.at(key, true, "invalid environment variable name %q", v)
	}
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1" || strings.HasPrefix(h, "127.")
}

func quoteJoin(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, " or ")
}
