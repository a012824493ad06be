package policy

import (
	"context"

	"github.com/mcpkey/mcpkey/api"
)

// The caller types live in package api (the wire carries them).
type (
	Caller  = api.Caller
	Process = api.Process
)

type callerKey struct{}

// callerValue is what WithCaller attaches: the caller and the memo of what
// policy learnt about it from /proc (see Policy.judge), kept for the life
// of the context.
type callerValue struct {
	c    Caller
	memo *callerMemo
}

// WithCaller returns ctx carrying c: the ipc server attaches each
// request's peer this way.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, callerValue{c, new(callerMemo)})
}

// CallerFrom returns the caller attached by WithCaller.
func CallerFrom(ctx context.Context) (Caller, bool) {
	v, ok := ctx.Value(callerKey{}).(callerValue)
	return v.c, ok
}

// memoFrom returns the memo WithCaller made for ctx's caller, nil if none.
func memoFrom(ctx context.Context) *callerMemo {
	v, _ := ctx.Value(callerKey{}).(callerValue)
	return v.memo
}

// restriction limits a request to some servers: requests that arrive on a
// restricted socket carry one (WithRestriction).
type restriction struct {
	socket  string
	servers []string
}

type restrictionKey struct{}

// WithRestriction returns ctx for a request that arrived on the restricted
// socket at path: Decide refuses it (api.ErrDenied) any server but these
// (configured names or URLs), and everything but tokens.
func WithRestriction(ctx context.Context, socket string, servers []string) context.Context {
	return context.WithValue(ctx, restrictionKey{}, restriction{socket: socket, servers: servers})
}

// restrictionFrom returns the restriction WithRestriction attached.
func restrictionFrom(ctx context.Context) (restriction, bool) {
	r, ok := ctx.Value(restrictionKey{}).(restriction)
	return r, ok
}
