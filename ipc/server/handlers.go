package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/browser"
	"github.com/mcpkey/mcpkey/ipc"
	json "github.com/segmentio/encoding/json"
)

// handler serves one method. after, if not nil, runs once the reply is
// queued (events.subscribe starts forwarding there).
type handler func(ctx context.Context, c *conn, m *ipc.Message) (result any, after func(), err error)

// handlers serves each method of the protocol table (ipc.Methods);
// TestEveryMethodHasAHandler checks that they agree. (Set in init: the
// handlers reach Serve, which reads the map.)
var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		ipc.MethodHello:           handleHello,
		ipc.MethodStatus:          handleStatus,
		ipc.MethodSessionsList:    handleSessions,
		ipc.MethodTokenGet:        handleToken,
		ipc.MethodSessionLogout:   handleLogout,
		ipc.MethodSessionLogin:    handleLogin,
		ipc.MethodSessionComplete: handleComplete,
		ipc.MethodEventsSubscribe: handleSubscribe,
		ipc.MethodApprovalsList:   handleApprovals,
		ipc.MethodApprovalAnswer:  handleAnswer,
		ipc.MethodLock:            handleLock,
		ipc.MethodUnlock:          handleUnlock,
		ipc.MethodSocketAdd:       handleSocketAdd,
		ipc.MethodSocketList:      handleSocketList,
		ipc.MethodSocketRemove:    handleSocketRemove,
		ipc.MethodSecretSet:       handleSecretSet,
		ipc.MethodSecretGet:       handleSecretGet,
		ipc.MethodSecretList:      handleSecretList,
		ipc.MethodSecretDelete:    handleSecretDelete,
		ipc.MethodServerResolve:   handleResolve,
	}
}

// capabilities lists the methods of the table that pass keep, in its order.
func capabilities(keep func(ipc.Method) bool) []string {
	var names []string
	for _, m := range ipc.Methods() {
		if keep(m) {
			names = append(names, m.Name)
		}
	}
	return names
}

// decodeParams decodes params (an object, or absent) into v. Unknown fields
// are ignored so that newer clients can talk to older agents.
func decodeParams(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] != '{' {
		return invalidParams("params must be an object")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return invalidParams(paramsError(err))
	}
	return nil
}

// paramsError describes a decoding error by field and type only: a JSON
// decoder may quote the offending bytes (a passphrase, a client secret or a
// token sent with the wrong type), so its messages are never passed on.
func paramsError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" && te.Type != nil {
		return fmt.Sprintf("invalid params: params.%s must be %s", te.Field, jsonKind(te.Type))
	}
	return "invalid params: not a valid params object"
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}

func invalidParams(msg string) *ipc.Error {
	return &ipc.Error{Code: ipc.CodeInvalidParams, Message: msg, Data: &ipc.ErrorData{Code: ipc.ErrCodeInvalidRequest}}
}

func requireServer(server string) error {
	if server == "" {
		return invalidParams("params.server is required")
	}
	return nil
}

func handleHello(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	var p ipc.HelloParams
	if err := decodeParams(m.Params, &p); err != nil {
		return nil, nil, err
	}
	if p.ProtocolVersion > ipc.ProtocolVersion {
		return nil, nil, &ipc.Error{Code: ipc.CodeInvalidReq,
			Message: fmt.Sprintf("protocol version %d not supported; this agent speaks %d", p.ProtocolVersion, ipc.ProtocolVersion),
			Data:    &ipc.ErrorData{Code: ipc.ErrCodeInvalidRequest}}
	}
	return ipc.HelloResult{ProtocolVersion: ipc.ProtocolVersion, AgentVersion: c.s.opts.AgentVersion, Capabilities: capabilities(func(ipc.Method) bool { return true })}, nil, nil
}

func handleStatus(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	st, err := c.s.b.Status(ctx)
	if err != nil {
		return nil, nil, err
	}
	return st, nil, nil
}

func handleSessions(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	ss, err := c.s.b.Sessions(ctx)
	if err != nil {
		return nil, nil, err
	}
	if ss == nil {
		ss = []agent.SessionInfo{}
	}
	return ipc.SessionsResult{Sessions: ss}, nil, nil
}

func handleToken(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	var p ipc.TokenParams
	if err := decodeParams(m.Params, &p); err != nil {
		return nil, nil, err
	}
	if err := requireServer(p.Server); err != nil {
		return nil, nil, err
	}
	if p.MinTTLSeconds < 0 {
		return nil, nil, invalidParams("params.min_ttl_seconds must not be negative")
	}
	tok, err := c.s.b.Token(ctx, agent.TokenRequest{Server: p.Server, Account: p.Account, Scopes: p.Scopes,
		MinTTL: time.Duration(min(p.MinTTLSeconds, 1<<32)) * time.Second, RejectedToken: p.RejectedToken})
	if err != nil {
		return nil, nil, err
	}
	return tok, nil, nil
}

func handleLogout(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	var p ipc.LogoutParams
	if err := decodeParams(m.Params, &p); err != nil {
		return nil, nil, err
	}
	if err := requireServer(p.Server); err != nil {
		return nil, nil, err
	}
	res, err := c.s.b.Logout(ctx, agent.LogoutRequest{Server: p.Server, Account: p.Account, KeepRemote: p.KeepRemote, ForgetClient: p.ForgetClient, ForgetIdP: p.ForgetIdP})
	if err != nil {
		return nil, nil, err
	}
	return res, nil, nil
}

func handleLogin(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	var p ipc.LoginParams
	if err := decodeParams(m.Params, &p); err != nil {
		return nil, nil, err
	}
	if err := requireServer(p.Server); err != nil {
		return nil, nil, err
	}
	// Progress sent after Login returned would arrive after the result;
	// drop it instead.
	var (
		mu   sync.Mutex
		done bool
	)
	progress := func(ev agent.Event) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			c.notify(ipc.NotifyLoginProgress, ipc.ProgressParams{ID: m.ID, Event: ev})
		}
	}
	req := agent.LoginRequest{Server: p.Server, Account: p.Account, Scopes: p.Scopes,
		NoBrowser: p.NoBrowser, ClientID: p.ClientID, ClientSecret: p.ClientSecret,
		ClientMetadataURL: p.ClientMetadataURL}
	if p.Grant != nil {
		req.Grant = *p.Grant
	}
	if p.Env != nil {
		// The caller's $BROWSER is a program the agent will run: accepted
		// only from the main socket, whose peer is checked to be us.
		if c.s.restrict == nil && c.caller.Transport == "unix" && c.caller.UID == os.Getuid() {
			req.Env = browser.Env{Browser: p.Env.Browser, Display: p.Env.Display, WaylandDisplay: p.Env.WaylandDisplay}
		} else {
			c.s.log.Debug("ignoring a login caller's environment", "transport", c.caller.Transport)
		}
	}
	info, err := c.s.b.Login(ctx, req, progress)
	mu.Lock()
	done = true
	mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	return info, nil, nil
}

func handleComplete(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	var p ipc.CompleteParams
	if err := decodeParams(m.Params, &p); err != nil {
		return nil, nil, err
	}
	if p.URL == "" {
		return nil, nil, invalidParams("params.url is required")
	}
	if err := c.s.b.CompleteLogin(ctx, p.URL); err != nil {
		return nil, nil, err
	}
	return struct{}{}, nil, nil
}

func handleSubscribe(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	c.mu.Lock()
	already := c.subscribed
	c.subscribed = true
	c.mu.Unlock()
	if already {
		return ipc.SubscribeResult{Subscribed: true}, nil, nil
	}
	// The subscription lives as long as the connection, not the request.
	ch := c.s.b.Subscribe(agent.WithCaller(c.ctx, c.caller))
	c.wg.Add(1)
	after := func() {
		go func() {
			defer c.wg.Done()
			for {
				select {
				case ev, ok := <-ch:
					if ok {
						c.notify(ipc.NotifyEvent, ipc.EventParams{Event: ev})
						continue
					}
				case <-c.ctx.Done():
					return
				}
				break
			}
			if c.ctx.Err() == nil {
				// The agent dropped this subscriber (too slow): close so the
				// client sees the stream end.
				c.s.log.Warn("disconnecting subscriber dropped by the agent", "pid", c.caller.PID)
				c.close()
			}
		}()
	}
	return ipc.SubscribeResult{Subscribed: true}, after, nil
}

// secretBackend returns the connection's backend as a SecretBackend, or a
// method-not-found error for backends without secrets.
func secretBackend(c *conn, m *ipc.Message) (SecretBackend, error) {
	sb, ok := c.s.b.(SecretBackend)
	if !ok {
		return nil, &ipc.Error{Code: ipc.CodeMethodNotFound, Message: "method not found: " + m.Method}
	}
	return sb, nil
}

func secretName(raw json.RawMessage) (string, error) {
	var p ipc.SecretParams
	if err := decodeParams(raw, &p); err != nil {
		return "", err
	}
	if p.Name == "" {
		return "", invalidParams("params.name is required")
	}
	return p.Name, nil
}

func handleSecretSet(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	sb, err := secretBackend(c, m)
	if err != nil {
		return nil, nil, err
	}
	var p ipc.SecretSetParams
	if err := decodeParams(m.Params, &p); err != nil {
		return nil, nil, err
	}
	if p.Name == "" {
		return nil, nil, invalidParams("params.name is required")
	}
	if err := sb.SetSecret(ctx, p.Name, []byte(p.Value)); err != nil {
		return nil, nil, err
	}
	return struct{}{}, nil, nil
}

func handleSecretGet(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	sb, err := secretBackend(c, m)
	if err != nil {
		return nil, nil, err
	}
	name, err := secretName(m.Params)
	if err != nil {
		return nil, nil, err
	}
	v, err := sb.Secret(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	return ipc.SecretValue{Name: name, Value: string(v)}, nil, nil
}

func handleSecretList(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	sb, err := secretBackend(c, m)
	if err != nil {
		return nil, nil, err
	}
	names, err := sb.Secrets(ctx)
	if err != nil {
		return nil, nil, err
	}
	if names == nil {
		names = []string{}
	}
	return ipc.SecretListResult{Names: names}, nil, nil
}

func handleSecretDelete(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	sb, err := secretBackend(c, m)
	if err != nil {
		return nil, nil, err
	}
	name, err := secretName(m.Params)
	if err != nil {
		return nil, nil, err
	}
	if err := sb.DeleteSecret(ctx, name); err != nil {
		return nil, nil, err
	}
	return struct{}{}, nil, nil
}

func handleResolve(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	sb, err := secretBackend(c, m)
	if err != nil {
		return nil, nil, err
	}
	var p ipc.ResolveParams
	if err := decodeParams(m.Params, &p); err != nil {
		return nil, nil, err
	}
	if err := requireServer(p.Server); err != nil {
		return nil, nil, err
	}
	sc, err := sb.ResolveServer(ctx, p.Server)
	if err != nil {
		return nil, nil, err
	}
	return ipc.ResolveResult{ServerConfig: sc, LoginWaitSeconds: int64(sc.LoginWait / time.Second)}, nil, nil
}

func policyBackend(c *conn, method string) (PolicyBackend, error) {
	if pb, ok := c.s.b.(PolicyBackend); ok {
		return pb, nil
	}
	return nil, &ipc.Error{Code: ipc.CodeMethodNotFound, Message: "method not found: " + method}
}

func handleApprovals(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	pb, err := policyBackend(c, m.Method)
	if err != nil {
		return nil, nil, err
	}
	list, err := pb.Approvals(ctx)
	if err != nil {
		return nil, nil, err
	}
	if list == nil {
		list = []agent.Approval{}
	}
	return ipc.ApprovalsResult{Approvals: list}, nil, nil
}

func handleAnswer(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	pb, err := policyBackend(c, m.Method)
	if err != nil {
		return nil, nil, err
	}
	var p ipc.AnswerParams
	if err := decodeParams(m.Params, &p); err != nil {
		return nil, nil, err
	}
	if p.ID <= 0 {
		return nil, nil, invalidParams("params.id is required")
	}
	r, err := pb.Answer(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	return r, nil, nil
}

func handleLock(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	return lockOrUnlock(ctx, c, m, PolicyBackend.Lock)
}

func handleUnlock(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	return lockOrUnlock(ctx, c, m, PolicyBackend.Unlock)
}

func lockOrUnlock(ctx context.Context, c *conn, m *ipc.Message, do func(PolicyBackend, context.Context, string) error) (any, func(), error) {
	pb, err := policyBackend(c, m.Method)
	if err != nil {
		return nil, nil, err
	}
	var p ipc.LockParams
	if err := decodeParams(m.Params, &p); err != nil {
		return nil, nil, err
	}
	if err := do(pb, ctx, p.Passphrase); err != nil {
		return nil, nil, err
	}
	return struct{}{}, nil, nil
}

func handleSocketAdd(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	// A locked agent opens no new way in (agent.Agent.Locked; the table
	// says socket.add is not answered while locked).
	if m, _ := ipc.LookupMethod(ipc.MethodSocketAdd); !m.WhileLocked && c.s.locked() {
		return nil, nil, fmt.Errorf("%w: run `mcpkey unlock`", agent.ErrLocked)
	}
	var p ipc.SocketAddParams
	if err := decodeParams(m.Params, &p); err != nil {
		return nil, nil, err
	}
	if len(p.Servers) == 0 {
		return nil, nil, invalidParams("params.servers is required")
	}
	var ttl time.Duration
	if p.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(p.TTL); err != nil || ttl <= 0 {
			return nil, nil, invalidParams(`params.ttl must be a positive duration such as "8h"`)
		}
	}
	info, err := c.s.AddRestricted(p.Path, p.Servers, ttl)
	if err != nil {
		return nil, nil, err
	}
	return info, nil, nil
}

func handleSocketList(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	return ipc.SocketsResult{Sockets: c.s.RestrictedSockets()}, nil, nil
}

func handleSocketRemove(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	var p ipc.SocketRemoveParams
	if err := decodeParams(m.Params, &p); err != nil {
		return nil, nil, err
	}
	if p.Path == "" {
		return nil, nil, invalidParams("params.path is required")
	}
	if err := c.s.RemoveRestricted(p.Path); err != nil {
		return nil, nil, err
	}
	return struct{}{}, nil, nil
}

// locked reports whether the backend says the agent is locked.
func (s *Server) locked() bool {
	l, ok := s.b.(interface{ Locked() bool })
	return ok && l.Locked()
}
