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
		ipc.MethodSessionImport:   handleImport,
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

// helloCapabilities is agent.hello's capabilities: the methods that pass
// keep, then the features (ipc.Features), which every socket serving
// token.get supports.
func helloCapabilities(keep func(ipc.Method) bool) []string {
	return append(capabilities(keep), ipc.Features()...)
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

// reply is a handler's answer: v, or err when err is not nil.
func reply(v any, err error) (any, func(), error) {
	if err != nil {
		return nil, nil, err
	}
	return v, nil, nil
}

// nonNil is s, or an empty slice for nil: lists go on the wire as [], not
// null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
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
	return ipc.HelloResult{ProtocolVersion: ipc.ProtocolVersion, AgentVersion: c.s.opts.AgentVersion, Capabilities: helloCapabilities(func(ipc.Method) bool { return true })}, nil, nil
}

func handleStatus(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	return reply(c.s.b.Status(ctx))
}

func handleSessions(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	ss, err := c.s.b.Sessions(ctx)
	return reply(ipc.SessionsResult{Sessions: nonNil(ss)}, err)
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
	if (p.DPoPMethod == "") != (p.DPoPURL == "") {
		return nil, nil, invalidParams("params.dpop_method and params.dpop_url go together")
	}
	return reply(c.s.b.Token(ctx, agent.TokenRequest{Server: p.Server, Account: p.Account, Scopes: p.Scopes,
		MinTTL: time.Duration(min(p.MinTTLSeconds, 1<<32)) * time.Second, RejectedToken: p.RejectedToken,
		DPoPMethod: p.DPoPMethod, DPoPURL: p.DPoPURL, DPoPNonce: p.DPoPNonce}))
}

func handleLogout(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	var req agent.LogoutRequest
	if err := decodeParams(m.Params, &req); err != nil {
		return nil, nil, err
	}
	if err := requireServer(req.Server); err != nil {
		return nil, nil, err
	}
	return reply(c.s.b.Logout(ctx, req))
}

func handleLogin(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	var req agent.LoginRequest
	if err := decodeParams(m.Params, &req); err != nil {
		return nil, nil, err
	}
	if err := requireServer(req.Server); err != nil {
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
	if !req.Env.IsZero() {
		// The caller's $BROWSER is a program the agent will run: accepted
		// only from the main socket, whose peer is checked to be us.
		if c.s.restrict != nil || c.caller.Transport != "unix" || c.caller.UID != os.Getuid() {
			c.s.log.Debug("ignoring a login caller's environment", "transport", c.caller.Transport)
			req.Env = browser.Env{}
		}
	}
	info, err := c.s.b.Login(ctx, req, progress)
	mu.Lock()
	done = true
	mu.Unlock()
	return reply(info, err)
}

func handleComplete(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	var p ipc.CompleteParams
	if err := decodeParams(m.Params, &p); err != nil {
		return nil, nil, err
	}
	if p.URL == "" {
		return nil, nil, invalidParams("params.url is required")
	}
	return reply(struct{}{}, c.s.b.CompleteLogin(ctx, p.URL))
}

func handleImport(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	ib, err := backendAs[ImportBackend](c, m)
	if err != nil {
		return nil, nil, err
	}
	// Tokens handed in from a plain file are accepted only from the main
	// Unix socket, whose peer is checked to be us: not from a restricted
	// socket's sandbox nor from a web page's WebSocket.
	if c.s.restrict != nil || c.caller.Transport != "unix" {
		return nil, nil, fmt.Errorf("%w: session.import is served only on the agent's main socket", agent.ErrDenied)
	}
	var p agent.ImportRequest
	if err := decodeParams(m.Params, &p); err != nil {
		return nil, nil, err
	}
	if err := requireServer(p.Server); err != nil {
		return nil, nil, err
	}
	if p.RefreshToken == "" {
		return nil, nil, invalidParams("params.refresh_token is required")
	}
	if p.Client.ClientID == "" {
		return nil, nil, invalidParams("params.client.client_id is required")
	}
	return reply(ib.Import(ctx, p))
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

// backendAs returns the connection's backend as a B (ImportBackend,
// SecretBackend, PolicyBackend), or a method-not-found error for backends
// without m's method.
func backendAs[B any](c *conn, m *ipc.Message) (B, error) {
	b, ok := c.s.b.(B)
	if !ok {
		return b, &ipc.Error{Code: ipc.CodeMethodNotFound, Message: "method not found: " + m.Method}
	}
	return b, nil
}

// backendParams is backendAs and decodeParams: the backend B m's method
// needs, and m's params as a P.
func backendParams[B, P any](c *conn, m *ipc.Message) (b B, p P, err error) {
	if b, err = backendAs[B](c, m); err == nil {
		err = decodeParams(m.Params, &p)
	}
	return b, p, err
}

func handleSecretSet(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	sb, p, err := backendParams[SecretBackend, ipc.SecretSetParams](c, m)
	if err != nil {
		return nil, nil, err
	}
	if p.Name == "" {
		return nil, nil, invalidParams("params.name is required")
	}
	return reply(struct{}{}, sb.SetSecret(ctx, p.Name, []byte(p.Value)))
}

func handleSecretGet(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	sb, p, err := backendParams[SecretBackend, ipc.SecretParams](c, m)
	if err != nil {
		return nil, nil, err
	}
	if p.Name == "" {
		return nil, nil, invalidParams("params.name is required")
	}
	v, err := sb.Secret(ctx, p.Name)
	return reply(ipc.SecretValue{Name: p.Name, Value: string(v)}, err)
}

func handleSecretList(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	sb, err := backendAs[SecretBackend](c, m)
	if err != nil {
		return nil, nil, err
	}
	names, err := sb.Secrets(ctx)
	return reply(ipc.SecretListResult{Names: nonNil(names)}, err)
}

func handleSecretDelete(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	sb, p, err := backendParams[SecretBackend, ipc.SecretParams](c, m)
	if err != nil {
		return nil, nil, err
	}
	if p.Name == "" {
		return nil, nil, invalidParams("params.name is required")
	}
	return reply(struct{}{}, sb.DeleteSecret(ctx, p.Name))
}

func handleResolve(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	sb, p, err := backendParams[SecretBackend, ipc.ResolveParams](c, m)
	if err != nil {
		return nil, nil, err
	}
	if err := requireServer(p.Server); err != nil {
		return nil, nil, err
	}
	sc, err := sb.ResolveServer(ctx, p.Server)
	return reply(ipc.ResolveResult{ServerConfig: sc, LoginWaitSeconds: int64(sc.LoginWait / time.Second)}, err)
}

func handleApprovals(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	pb, err := backendAs[PolicyBackend](c, m)
	if err != nil {
		return nil, nil, err
	}
	list, err := pb.Approvals(ctx)
	return reply(ipc.ApprovalsResult{Approvals: nonNil(list)}, err)
}

func handleAnswer(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	pb, p, err := backendParams[PolicyBackend, ipc.AnswerParams](c, m)
	if err != nil {
		return nil, nil, err
	}
	if p.ID <= 0 {
		return nil, nil, invalidParams("params.id is required")
	}
	return reply(pb.Answer(ctx, p))
}

func handleLock(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	return lockOrUnlock(ctx, c, m, PolicyBackend.Lock)
}

func handleUnlock(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	return lockOrUnlock(ctx, c, m, PolicyBackend.Unlock)
}

func lockOrUnlock(ctx context.Context, c *conn, m *ipc.Message, do func(PolicyBackend, context.Context, string) error) (any, func(), error) {
	pb, p, err := backendParams[PolicyBackend, ipc.LockParams](c, m)
	if err != nil {
		return nil, nil, err
	}
	return reply(struct{}{}, do(pb, ctx, p.Passphrase))
}

func handleSocketAdd(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	// A locked agent opens no new way in: the agent's policy decides (the
	// table says socket.add is not answered while locked).
	if pb, ok := c.s.b.(PolicyBackend); ok {
		if err := pb.Admit(ctx, ipc.MethodSocketAdd); err != nil {
			return nil, nil, err
		}
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
	return reply(c.s.AddRestricted(p.Path, p.Servers, ttl))
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
	return reply(struct{}{}, c.s.RemoveRestricted(p.Path))
}
