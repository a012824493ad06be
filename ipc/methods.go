package ipc

import (
	"slices"

	"github.com/mcpkey/mcpkey/api"
)

// Method is one row of the protocol table: a method's name, the types of
// its params and result, and how it may be called. The server dispatches,
// announces capabilities and guards restricted sockets from this table; the
// client decides retries from it; TestDocListsTheMethods checks that the
// package documentation describes exactly these methods.
type Method struct {
	Name string
	// Params and Result are zero values of the params and result types;
	// nil Params: the method takes none. Empty is struct{} ({} on the wire).
	Params, Result any
	// Idempotent: the client may send it again on a fresh connection when
	// the first one broke before the reply (the agent restarted).
	Idempotent bool
	// Restricted: served on a restricted socket (socket.add).
	Restricted bool
	// WhileLocked: answered normally while the agent is locked; the others
	// answer locked.
	WhileLocked bool
	// Approval: may wait for the user's approval (confirm, see
	// approvals.list) before it is answered.
	Approval bool
	// Notification: sent without an id and never answered (rpc.cancel).
	Notification bool
}

// Empty is the result of methods that return nothing: {}.
type Empty struct{}

// table is the protocol, in agent.hello's capabilities order.
var table = []Method{
	{Name: MethodHello, Params: HelloParams{}, Result: HelloResult{}, Idempotent: true, Restricted: true, WhileLocked: true},
	{Name: MethodStatus, Result: api.Status{}, Idempotent: true, WhileLocked: true},
	{Name: MethodSessionsList, Result: SessionsResult{}, Idempotent: true, WhileLocked: true},
	{Name: MethodTokenGet, Params: TokenParams{}, Result: api.Token{}, Idempotent: true, Restricted: true, Approval: true},
	{Name: MethodSessionLogout, Params: api.LogoutRequest{}, Result: api.LogoutResult{}},
	{Name: MethodSessionLogin, Params: api.LoginRequest{}, Result: api.SessionInfo{}},
	{Name: MethodSessionComplete, Params: CompleteParams{}, Result: Empty{}, WhileLocked: true},
	{Name: MethodSessionImport, Params: api.ImportRequest{}, Result: api.SessionInfo{}},
	{Name: MethodEventsSubscribe, Result: SubscribeResult{}, WhileLocked: true},
	{Name: MethodCancel, Params: CancelParams{}, WhileLocked: true, Notification: true},
	{Name: MethodSecretSet, Params: SecretSetParams{}, Result: Empty{}},
	{Name: MethodSecretGet, Params: SecretParams{}, Result: SecretValue{}, Idempotent: true},
	{Name: MethodSecretList, Result: SecretListResult{}, Idempotent: true, WhileLocked: true},
	{Name: MethodSecretDelete, Params: SecretParams{}, Result: Empty{}},
	{Name: MethodServerResolve, Params: ResolveParams{}, Result: ResolveResult{}, Idempotent: true, WhileLocked: true},
	{Name: MethodApprovalsList, Result: ApprovalsResult{}, Idempotent: true, WhileLocked: true},
	{Name: MethodApprovalAnswer, Params: AnswerParams{}, Result: api.AnswerResult{}, WhileLocked: true},
	{Name: MethodLock, Params: LockParams{}, Result: Empty{}, WhileLocked: true},
	{Name: MethodUnlock, Params: LockParams{}, Result: Empty{}, WhileLocked: true},
	{Name: MethodSocketAdd, Params: SocketAddParams{}, Result: RestrictedSocket{}},
	{Name: MethodSocketList, Result: SocketsResult{}, Idempotent: true, WhileLocked: true},
	{Name: MethodSocketRemove, Params: SocketRemoveParams{}, Result: Empty{}, WhileLocked: true},
}

// Methods returns the protocol table, in agent.hello's capabilities order.
func Methods() []Method { return slices.Clone(table) }

// LookupMethod returns the table's row for name.
func LookupMethod(name string) (Method, bool) {
	i := slices.IndexFunc(table, func(m Method) bool { return m.Name == name })
	if i < 0 {
		return Method{}, false
	}
	return table[i], true
}
