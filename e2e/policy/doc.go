// Package policy holds two tiny token clients, alpha and beta, that the
// approval tests in e2e/policy_test.go build as two different executables:
// the agent must tell them apart by path and pid. answer is the attacker
// that tries to allow an approval itself, speaking the protocol.
package policy
