package ipc

import (
	"slices"

	"github.com/mcpkey/mcpkey/api"
)

// Method is one row of the protocol table: a method's name, the types of
// its params and result, and how it may be called. The server dispatches,
// announces capabilities and guards restricted sockets from this table; the
// client decides retries from it and types its wrappers by it (rpc);
// TestDocListsTheMethods checks that the package documentation describes
// exactly these methods.
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

// rpc is a method's name typed with its params (P) and result (R); none
// for either means the method has none. A table row and the client's
// wrapper both come from one rpc value, so a wrapper sends exactly its
// row's params and decodes exactly its row's result.
type rpc[P, R any] string

// none is an rpc's params or result type when it has none.
type none struct{}

// row is m's table row with flags' properties.
func (m rpc[P, R]) row(flags Method) Method {
	flags.Name = string(m)
	var p P
	if _, none := any(p).(none); !none {
		flags.Params = p
	}
	var r R
	if _, none := any(r).(none); !none {
		flags.Result = r
	}
	return flags
}

// The methods, typed.
const (
	rpcHello           rpc[HelloParams, HelloResult]            = MethodHello
	rpcStatus          rpc[none, api.Status]                    = MethodStatus
	rpcSessionsList    rpc[none, SessionsResult]                = MethodSessionsList
	rpcTokenGet        rpc[TokenParams, api.Token]              = MethodTokenGet
	rpcSessionLogout   rpc[api.LogoutRequest, api.LogoutResult] = MethodSessionLogout
	rpcSessionLogin    rpc[api.LoginRequest, api.SessionInfo]   = MethodSessionLogin
	rpcSessionImport   rpc[api.ImportRequest, api.SessionInfo]  = MethodSessionImport
	rpcSessionComplete rpc[CompleteParams, Empty]               = MethodSessionComplete
	rpcEventsSubscribe rpc[none, SubscribeResult]               = MethodEventsSubscribe
	rpcCancel          rpc[CancelParams, none]                  = MethodCancel
	rpcSecretSet       rpc[SecretSetParams, Empty]              = MethodSecretSet
	rpcSecretGet       rpc[SecretParams, SecretValue]           = MethodSecretGet
	rpcSecretList      rpc[none, SecretListResult]              = MethodSecretList
	rpcSecretDelete    rpc[SecretParams, Empty]                 = MethodSecretDelete
	rpcServerResolve   rpc[ResolveParams, ResolveResult]        = MethodServerResolve
	rpcApprovalsList   rpc[none, ApprovalsResult]               = MethodApprovalsList
	rpcApprovalAnswer  rpc[AnswerParams, api.AnswerResult]      = MethodApprovalAnswer
	rpcLock            rpc[LockParams, Empty]                   = MethodLock
	rpcUnlock          rpc[LockParams, Empty]                   = MethodUnlock
	rpcSocketAdd       rpc[SocketAddParams, RestrictedSocket]   = MethodSocketAdd
	rpcSocketList      rpc[none, SocketsResult]                 = MethodSocketList
	rpcSocketRemove    rpc[SocketRemoveParams, Empty]           = MethodSocketRemove
)

// table is the protocol, in agent.hello's capabilities order.
var table = []Method{
	rpcHello.row(Method{Idempotent: true, Restricted: true, WhileLocked: true}),
	rpcStatus.row(Method{Idempotent: true, WhileLocked: true}),
	rpcSessionsList.row(Method{Idempotent: true, WhileLocked: true}),
	rpcTokenGet.row(Method{Idempotent: true, Restricted: true, Approval: true}),
	rpcSessionLogout.row(Method{}),
	rpcSessionLogin.row(Method{}),
	rpcSessionComplete.row(Method{WhileLocked: true}),
	rpcSessionImport.row(Method{}),
	rpcEventsSubscribe.row(Method{WhileLocked: true}),
	rpcCancel.row(Method{WhileLocked: true, Notification: true}),
	rpcSecretSet.row(Method{}),
	rpcSecretGet.row(Method{Idempotent: true}),
	rpcSecretList.row(Method{Idempotent: true, WhileLocked: true}),
	rpcSecretDelete.row(Method{}),
	rpcServerResolve.row(Method{Idempotent: true, WhileLocked: true}),
	rpcApprovalsList.row(Method{Idempotent: true, WhileLocked: true}),
	rpcApprovalAnswer.row(Method{WhileLocked: true}),
	rpcLock.row(Method{WhileLocked: true}),
	rpcUnlock.row(Method{WhileLocked: true}),
	rpcSocketAdd.row(Method{}),
	rpcSocketList.row(Method{Idempotent: true, WhileLocked: true}),
	rpcSocketRemove.row(Method{WhileLocked: true}),
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
