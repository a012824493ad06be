package oauth

import "net/url"

// RequestOption adjusts the parameters of the authorization, token, refresh
// and device requests of one login or session.
type RequestOption func(*requestOptions)

type requestOptions struct {
	audience string
	// dpop, when set, signs a DPoP proof on token requests (WithDPoP).
	dpop   *DPoPKey
	nonces *Nonces
}

// WithAudience also sends aud as the "audience" parameter, next to RFC 8707
// "resource". Some authorization servers (Ory Hydra, Auth0) ignore
// "resource" and set a token's audience only from "audience"; without it
// their tokens carry no audience and resource servers that check it refuse
// them. "" sends nothing.
func WithAudience(aud string) RequestOption {
	return func(o *requestOptions) { o.audience = aud }
}

func applyOptions(opts []RequestOption) requestOptions {
	var o requestOptions
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// addTo sets the extra parameters on a form.
func (o requestOptions) addTo(form url.Values) {
	if o.audience != "" {
		form.Set("audience", o.audience)
	}
}
