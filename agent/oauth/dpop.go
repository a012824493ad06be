package oauth

import (
	"bytes"
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DPoP (RFC 9449): the agent holds one P-256 key per key-bound session and
// signs a proof for every token request and every resource request. The
// proof JWT is built and signed with golang-jwt (already the project's JWT
// library); the JWK and its RFC 7638 thumbprint are written out here
// because golang-jwt has no JWK support and the EC form is three members.

// DPoPAlg is the only proof algorithm mcpkey signs with: ES256 is the one
// RFC 9449 and the MCP DPoP extension expect every server to accept.
const DPoPAlg = "ES256"

// DPoPKey is a session's proof key. It never leaves the agent: only proofs
// signed with it (and its public JWK inside them) do.
type DPoPKey struct {
	priv *ecdsa.PrivateKey
	// header is the proof's JOSE header, base64url-encoded: the same for
	// every proof of this key (typ, alg, jwk), so it is encoded once.
	header string
	jkt    string
}

// NewDPoPKey makes a fresh P-256 key.
func NewDPoPKey() (*DPoPKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("dpop key: %w", err)
	}
	return newDPoPKey(priv)
}

// ParseDPoPKey reads a key MarshalDPoPKey wrote (PKCS #8 DER).
func ParseDPoPKey(der []byte) (*DPoPKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("dpop key: not a PKCS #8 key") // never echo key bytes
	}
	priv, ok := k.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, errors.New("dpop key: not a P-256 key")
	}
	return newDPoPKey(priv)
}

func newDPoPKey(priv *ecdsa.PrivateKey) (*DPoPKey, error) {
	pub, err := priv.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, fmt.Errorf("dpop key: %w", err)
	}
	x := base64.RawURLEncoding.EncodeToString(pub[1:33])
	y := base64.RawURLEncoding.EncodeToString(pub[33:65])
	hdr, err := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": DPoPAlg,
		"jwk": map[string]string{"kty": "EC", "crv": "P-256", "x": x, "y": y}})
	if err != nil {
		return nil, fmt.Errorf("dpop key: %w", err)
	}
	return &DPoPKey{priv: priv, header: base64.RawURLEncoding.EncodeToString(hdr), jkt: ThumbprintP256(x, y)}, nil
}

// ThumbprintP256 is the RFC 7638 SHA-256 thumbprint of the P-256 JWK with
// base64url coordinates x and y: the cnf.jkt of tokens bound to it.
func ThumbprintP256(x, y string) string {
	// RFC 7638 §3.2: the required members in lexicographic order, no spaces.
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ATH is the ath claim of a proof presented with accessToken: base64url
// SHA-256 of the token (RFC 9449 §4.2).
func ATH(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Marshal returns the private key as PKCS #8 DER, for the keyring only. The
// caller clears it once stored.
func (k *DPoPKey) Marshal() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, fmt.Errorf("dpop key: %w", err)
	}
	return der, nil
}

// Thumbprint is the key's RFC 7638 SHA-256 JWK thumbprint: the cnf.jkt of
// tokens bound to it. Not a secret.
func (k *DPoPKey) Thumbprint() string { return k.jkt }

// Proof signs a DPoP proof for one request: htm method, htu rawURL without
// query and fragment, a fresh jti, iat now, ath of accessToken when one is
// given (resource requests) and nonce when one is known.
func (k *DPoPKey) Proof(method, rawURL, nonce, accessToken string) (string, error) {
	htu, err := HTU(rawURL)
	if err != nil {
		return "", err
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	claims := proofClaims{
		JTI: base64.RawURLEncoding.EncodeToString(jti[:]),
		HTM: strings.ToUpper(method),
		HTU: htu,
		IAT: time.Now().Unix(),
	}
	if accessToken != "" {
		claims.ATH = ATH(accessToken)
	}
	claims.Nonce = nonce
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	// golang-jwt signs (ES256: fixed-size r||s); the header is this key's,
	// encoded once, rather than golang-jwt's Token re-encoding it each time.
	signing := k.header + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig, err := jwt.SigningMethodES256.Sign(signing, k.priv)
	if err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// proofClaims are a DPoP proof's claims (RFC 9449 §4.2).
type proofClaims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// HTU is rawURL as a proof's htu: absolute http(s), without query and
// fragment (RFC 9449 §4.2).
func HTU(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("dpop proof: %q is not an absolute http(s) URL", sanitizeRemote(rawURL, 200))
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment, u.User = "", false, "", "", nil
	return u.String(), nil
}

// Origin is rawURL's scheme://host[:port], the key nonces are kept under.
func Origin(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}

// Nonces remembers the last DPoP-Nonce each origin sent (RFC 9449 §8, §9),
// for authorization and resource servers alike. Safe for concurrent use.
type Nonces struct {
	mu sync.Mutex
	m  map[string]string
}

// maxNonces bounds the map: past it, it starts over (a server whose nonce
// was forgotten answers use_dpop_nonce once more).
const maxNonces = 1024

// Get returns the nonce last seen from rawURL's origin.
func (n *Nonces) Get(rawURL string) string {
	if n == nil {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[Origin(rawURL)]
}

// Set remembers nonce for rawURL's origin ("" is ignored).
func (n *Nonces) Set(rawURL, nonce string) {
	if n == nil || nonce == "" || len(nonce) > 1024 {
		return
	}
	o := Origin(rawURL)
	if o == "" {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil || len(n.m) >= maxNonces {
		n.m = make(map[string]string)
	}
	n.m[o] = nonce
}

// WithDPoP signs a proof with key on the token requests (code exchange,
// refresh, device grant polling) and answers an authorization server's
// use_dpop_nonce once with its nonce, remembered in nonces.
func WithDPoP(key *DPoPKey, nonces *Nonces) RequestOption {
	return func(o *requestOptions) { o.dpop, o.nonces = key, nonces }
}

// client returns hc, with DPoP proofs on its requests when the options ask.
func (o requestOptions) client(hc *http.Client) *http.Client {
	if o.dpop == nil {
		return hc
	}
	hc = cmp.Or(hc, http.DefaultClient)
	c := *hc
	base := cmp.Or(hc.Transport, http.DefaultTransport)
	c.Transport = &dpopTransport{base: base, key: o.dpop, nonces: o.nonces}
	return &c
}

// dpopTransport adds a DPoP proof to each token endpoint request and
// retries once on a use_dpop_nonce answer (RFC 9449 §8).
type dpopTransport struct {
	base   http.RoundTripper
	key    *DPoPKey
	nonces *Nonces
}

func (t *dpopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		r := req.Clone(req.Context())
		if attempt > 0 {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		target := req.URL.String()
		proof, err := t.key.Proof(req.Method, target, t.nonces.Get(target), "")
		if err != nil {
			return nil, err
		}
		r.Header.Set("DPoP", proof)
		resp, err := t.base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		nonce := resp.Header.Get("DPoP-Nonce")
		t.nonces.Set(target, nonce)
		if attempt > 0 || nonce == "" || req.GetBody == nil || !asksForNonce(resp) {
			return resp, nil
		}
		resp.Body.Close()
	}
}

// asksForNonce reports whether a token endpoint answer is a use_dpop_nonce
// error (400 with that error code, or a 401 challenge saying so). The body
// it reads is put back for the caller.
func asksForNonce(resp *http.Response) bool {
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized {
		return false
	}
	if slices.ContainsFunc(resp.Header.Values("WWW-Authenticate"), func(v string) bool { return strings.Contains(v, "use_dpop_nonce") }) {
		return true
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return false
	}
	var e struct {
		Error string `json:"error"`
	}
	return json.Unmarshal(body, &e) == nil && e.Error == "use_dpop_nonce"
}
