package launch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/ipc"
)

// RefPrefix starts an environment reference that mcpkey exec resolves:
//
//	VAR=mcpkey://NAME         the access token of the configured server NAME
//	VAR=mcpkey://secret/NAME  the static secret NAME (mcpkey secret set NAME)
//
// as 1Password's `op run` resolves op:// references. The value must be the
// whole reference.
const RefPrefix = "mcpkey://"

// ExecConfig configures ExecEnv.
type ExecConfig struct {
	// Client talks to the agent. Required.
	Client *ipc.Client
	// Server, when set, is the configured server whose [servers.NAME.env]
	// table is applied: VAR = "token" (its access token) or "secret:NAME".
	Server string
	// Account selects the session for "token" entries.
	Account string
	// Environ is the caller's environment (os.Environ()); its mcpkey://
	// references are resolved too.
	Environ []string
}

// ExecEnv returns the environment for a child: cfg.Environ with the
// server's env table applied and every mcpkey:// reference replaced by its
// value. When any secret is missing it returns a *MissingSecretsError naming
// all of them; when a token needs a login, an *agent.NeedsLoginError.
//
// Tokens in an environment cannot be refreshed under a long-running child:
// it keeps the token it started with until it expires. Use it for stdio
// servers and short jobs; `mcpkey bridge` or `mcpkey proxy` fetch a fresh
// token for every request to an HTTP server.
func ExecEnv(ctx context.Context, cfg ExecConfig) ([]string, error) {
	if cfg.Client == nil {
		return nil, errors.New("exec: Client is required")
	}
	type want struct {
		name string // variable
		kind string // "token" or "secret"
		ref  string // server or secret name
	}
	var wants []want
	env := slices.Clone(cfg.Environ)
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		rest, ok := strings.CutPrefix(v, RefPrefix)
		if !ok {
			continue
		}
		if name, ok := strings.CutPrefix(rest, "secret/"); ok {
			wants = append(wants, want{k, "secret", name})
		} else {
			wants = append(wants, want{k, "token", rest})
		}
	}
	if cfg.Server != "" {
		sc, err := cfg.Client.ResolveServer(ctx, cfg.Server)
		if err != nil {
			return nil, err
		}
		for _, k := range sortedKeys(sc.Env) {
			v := sc.Env[k]
			if v == "token" {
				wants = append(wants, want{k, "token", cfg.Server})
			} else if name, ok := config.SecretRef(v); ok {
				wants = append(wants, want{k, "secret", name})
			} else {
				return nil, fmt.Errorf("%w: env %s of %s: %q is neither \"token\" nor \"secret:NAME\"", agent.ErrInvalidRequest, k, cfg.Server, v)
			}
		}
	}
	var refs []string
	for _, w := range wants {
		if w.kind == "secret" {
			refs = append(refs, "secret:"+w.ref)
		}
	}
	vals, err := secrets(ctx, cfg.Client, cfg.Server, refs)
	if err != nil {
		return nil, err
	}
	tokens := map[string]string{}
	for _, w := range wants {
		var v string
		switch w.kind {
		case "secret":
			v = vals[w.ref]
		case "token":
			if _, ok := tokens[w.ref]; !ok {
				account := ""
				if w.ref == cfg.Server {
					account = cfg.Account
				}
				tok, err := cfg.Client.Token(ctx, agent.TokenRequest{Server: w.ref, Account: account})
				if err != nil {
					return nil, fmt.Errorf("token for %s (%s): %w", w.ref, w.name, err)
				}
				tokens[w.ref] = tok.AccessToken
			}
			v = tokens[w.ref]
		}
		env = setEnv(env, w.name, v)
	}
	return env, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// setEnv sets k=v in env, replacing every earlier k.
func setEnv(env []string, k, v string) []string {
	out := env[:0]
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); name != k {
			out = append(out, kv)
		}
	}
	return append(out, k+"="+v)
}

// Exec runs argv with env in place of this process: on Unix it replaces
// the process (execve), so nothing of mcpkey stays between the host and the
// child; on Windows it starts the child, forwards Ctrl-C and returns its
// exit code. On Unix it returns only on failure.
func Exec(ctx context.Context, argv, env []string) (exitCode int, err error) {
	if len(argv) == 0 {
		return 0, errors.New("exec: no command")
	}
	path, err := lookPath(argv[0], env)
	if err != nil {
		return 127, err
	}
	return execve(ctx, path, argv, env)
}

// lookPath finds file on the child's PATH.
func lookPath(file string, env []string) (string, error) {
	if strings.ContainsAny(file, `/\`) {
		return exec.LookPath(file)
	}
	for _, kv := range slices.Backward(env) {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, dir := range strings.Split(p, pathListSep) {
				dir = cmp.Or(dir, ".")
				if found, err := exec.LookPath(dir + string(pathSep) + file); err == nil {
					return found, nil
				}
			}
			return "", fmt.Errorf("exec: %s: not found on the child's PATH", file)
		}
	}
	return exec.LookPath(file)
}
