package policy

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/api"
)

// PolkitAction is the polkit action an approval under approval = "polkit"
// asks for; packaging installs its definition
// (/usr/share/polkit-1/actions/dev.mcpkey.approve.policy).
const PolkitAction = "dev.mcpkey.approve"

// askTrusted asks the trusted prompt of mode for p and settles p with its
// answer: allowed (remembered for the server's remember time, as the
// dialog offers no choice), denied (a wrong password or a dismissed
// dialog), or failed. When p is settled otherwise first (a denial from the
// tray or a terminal, the timeout, the lock), the question is withdrawn.
func (po *Policy) askTrusted(p *approval, mode string) {
	defer po.wg.Done()
	ctx, cancel := context.WithCancel(po.ctx)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var ok bool
	var err error
	switch mode {
	case config.ApprovalPolkit:
		ok, err = po.polkitAuthorize(ctx, fmt.Sprintf("mcpkey-%d-%d", os.Getpid(), p.ID))
	default:
		err = fmt.Errorf("Touch ID approvals are not built yet (set approval = \"prompt\" or \"polkit\"): %w", errors.ErrUnsupported)
	}
	switch {
	case ctx.Err() != nil:
		return // settled otherwise, or the agent stops
	case err != nil:
		po.mu.Lock()
		if p.Decision == "" {
			p.failure = err.Error()
		}
		po.mu.Unlock()
		po.log.Warn("approval: the trusted prompt could not ask", "id", p.ID, "via", mode, "err", err)
		po.decide(p, api.DecisionFailed, false)
	case ok:
		po.decide(p, api.DecisionAllow, true)
	default:
		po.decide(p, api.DecisionDeny, false)
	}
}
