package oauth

import (
	"reflect"
	"testing"
)

func TestSelectScopes(t *testing.T) {
	withOffline := &AuthServer{ScopesSupported: []string{"mcp:basic", "offline_access", "admin"}}
	noOffline := &AuthServer{ScopesSupported: []string{"mcp:basic", "admin"}}
	prm := &Discovery{ScopesSupported: []string{"mcp:read", "mcp:write"}}
	tests := []struct {
		name     string
		ch       *Challenge
		d        *Discovery
		as       *AuthServer
		previous []string
		want     []string
	}{
		{"challenge scope wins over PRM", &Challenge{Scopes: []string{"files:read"}}, prm, noOffline, nil,
			[]string{"files:read"}},
		{"challenge scope outside scopes_supported is still used", &Challenge{Scopes: []string{"x:y"}}, prm, nil, nil,
			[]string{"x:y"}},
		{"PRM scopes_supported when the challenge has none", &Challenge{Status: 401}, prm, noOffline, nil,
			[]string{"mcp:read", "mcp:write"}},
		{"nil challenge uses PRM", nil, prm, nil, nil, []string{"mcp:read", "mcp:write"}},
		{"nothing: omitted, never AS scopes_supported", &Challenge{}, &Discovery{}, noOffline, nil, nil},
		{"all nil", nil, nil, nil, nil, nil},
		{"offline_access added when the AS lists it", nil, prm, withOffline, nil,
			[]string{"mcp:read", "mcp:write", "offline_access"}},
		{"offline_access alone when nothing else is known", nil, nil, withOffline, nil,
			[]string{"offline_access"}},
		{"offline_access not duplicated", &Challenge{Scopes: []string{"offline_access", "a"}}, nil, withOffline, nil,
			[]string{"offline_access", "a"}},
		{"offline_access in PRM only is not added by us", nil, &Discovery{ScopesSupported: []string{"a", "offline_access"}}, noOffline, nil,
			[]string{"a", "offline_access"}},
		{"step-up: union of previous and challenged, order kept", &Challenge{Error: "insufficient_scope", Scopes: []string{"mcp:write", "mcp:read"}},
			prm, noOffline, []string{"mcp:read", "files:read"},
			[]string{"mcp:read", "files:read", "mcp:write"}},
		{"step-up with offline_access", &Challenge{Scopes: []string{"w"}}, nil, withOffline, []string{"r", "offline_access"},
			[]string{"r", "offline_access", "w"}},
		{"previous only", nil, nil, nil, []string{"a", "a", ""}, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SelectScopes(tt.ch, tt.d, tt.as, tt.previous)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSelectScopesDoesNotAlias(t *testing.T) {
	ch := &Challenge{Scopes: []string{"a", "b"}}
	got := SelectScopes(ch, nil, &AuthServer{ScopesSupported: []string{"offline_access"}}, nil)
	got[0] = "changed"
	if ch.Scopes[0] != "a" {
		t.Error("SelectScopes returned the challenge's slice")
	}
}
