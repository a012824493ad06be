package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/mcpkey/mcpkey/agent/policy"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/api"
)

// Static secrets are API keys and other values that are not OAuth grants:
// `mcpkey secret set NAME` stores one, and the config references it as
// "secret:NAME" from a server's headers (mcpkey bridge and proxy add them to
// every request) or env (mcpkey exec puts them in a child's environment).
// They live in the same store as the sessions, under secret/NAME; listing
// them reads no value.

// MaxSecretSize is the largest static secret the agent stores (64 KiB).
const MaxSecretSize = api.MaxSecretSize

// SetSecret stores value under name, replacing any previous value.
// Like reading it, it passes the policy (policy.Policy.Decide): a locked agent or a deny rule
// against the caller refuses it.
func (a *Agent) SetSecret(ctx context.Context, name string, value []byte) error {
	if err := a.pol.Admit(ctx, policy.Request{Op: policy.OpSecretSet, Secret: name}); err != nil {
		return err
	}
	if len(value) == 0 {
		return fmt.Errorf("%w: secret %s: empty value", ErrInvalidRequest, name)
	}
	if len(value) > MaxSecretSize {
		return fmt.Errorf("%w: secret %s: %d bytes, more than %d", ErrInvalidRequest, name, len(value), MaxSecretSize)
	}
	if err := store.PutSecret(ctx, a.cfg.Store, name, value); err != nil {
		return secretErr(err)
	}
	a.log.Info("secret stored", "name", name)
	return nil
}

// Secret returns the value stored under name; ErrNotFound if there is none.
// The caller must pass the policy (policy.Policy.Decide): not on a restricted socket, not while
// locked, no deny rule against it.
func (a *Agent) Secret(ctx context.Context, name string) ([]byte, error) {
	if err := a.pol.Admit(ctx, policy.Request{Op: policy.OpSecretGet, Secret: name}); err != nil {
		return nil, err
	}
	v, err := store.LoadSecret(ctx, a.cfg.Store, name)
	if err != nil {
		return nil, secretErr(err)
	}
	a.log.Debug("secret read", "name", name, "caller", callerPID(ctx))
	return v, nil
}

// Secrets lists the stored secrets' names, sorted, without reading them.
func (a *Agent) Secrets(ctx context.Context) ([]string, error) {
	names, err := store.ListSecrets(ctx, a.cfg.Store)
	if err != nil {
		return nil, secretErr(err)
	}
	return names, nil
}

// DeleteSecret removes the secret name; ErrNotFound if there is none. Like
// reading it, it passes the policy (policy.Policy.Decide).
func (a *Agent) DeleteSecret(ctx context.Context, name string) error {
	if err := a.pol.Admit(ctx, policy.Request{Op: policy.OpSecretDel, Secret: name}); err != nil {
		return err
	}
	if err := store.DeleteSecret(ctx, a.cfg.Store, name); err != nil {
		return secretErr(err)
	}
	a.log.Info("secret deleted", "name", name)
	return nil
}

// ResolveServer returns a server's launch configuration: a configured name
// or URL resolves to its [servers.NAME] entry; any other http(s) URL to
// itself, with no headers or env.
func (a *Agent) ResolveServer(ctx context.Context, ref string) (ServerConfig, error) {
	t, err := a.names.resolve(ref)
	if err != nil {
		return ServerConfig{}, err
	}
	a.mu.RLock()
	wait := a.settings.LoginWait
	a.mu.RUnlock()
	if wait == 0 {
		wait = DefaultLoginWait
	}
	sc := ServerConfig{Name: t.settings.Name, URL: t.settings.URL, Resource: t.url, Account: t.settings.Account,
		Headers: maps.Clone(t.settings.Headers), Env: maps.Clone(t.settings.Env), LoginWait: wait}
	if sc.URL == "" {
		sc.URL = ref
	}
	return sc, nil
}

// secretErr maps store errors onto the agent's sentinels.
func secretErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	case errors.Is(err, store.ErrInvalidKey):
		return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	return storeErr(err)
}

func callerPID(ctx context.Context) int {
	c, _ := CallerFrom(ctx)
	return c.PID
}
