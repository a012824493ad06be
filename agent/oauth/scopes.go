package oauth

import "slices"

// SelectScopes chooses the scope parameter of an authorization request
// (spec-checklist §F, §K):
//
//  1. the challenge's scope (authoritative for that request, whatever its
//     relation to scopes_supported), else
//  2. all of the PRM's scopes_supported, else
//  3. none: nil, and the scope parameter is omitted (never "scope=").
//
// offline_access is added only when the AS metadata's scopes_supported lists
// it (SEP-2207). On step-up, previous (the scopes requested or granted
// before) are kept and the new ones appended: the union of SEP-2350. The AS's
// scopes_supported is never requested otherwise (RFC 9728 §7.2). Order is
// kept and duplicates dropped; any argument may be nil.
func SelectScopes(ch *Challenge, d *Discovery, as *AuthServer, previous []string) []string {
	var base []string
	switch {
	case ch != nil && len(ch.Scopes) > 0:
		base = ch.Scopes
	case d != nil && len(d.ScopesSupported) > 0:
		base = d.ScopesSupported
	}
	var out []string
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, s := range previous {
		add(s)
	}
	for _, s := range base {
		add(s)
	}
	if as != nil && slices.Contains(as.ScopesSupported, "offline_access") {
		add("offline_access")
	}
	return out
}

// UnionScopes returns a ∪ b in first-seen order (the scopes a step-up
// login asks for: SEP-2350).
func UnionScopes(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
