package server

import (
	"testing"

	"github.com/mcpkey/mcpkey/ipc"
)

// TestEveryMethodHasAHandler: the server serves exactly the protocol
// table's methods (notifications are handled before dispatch).
func TestEveryMethodHasAHandler(t *testing.T) {
	for _, m := range ipc.Methods() {
		if _, ok := handlers[m.Name]; ok == m.Notification {
			t.Errorf("%s: has a handler %v, notification %v", m.Name, ok, m.Notification)
		}
	}
	for name := range handlers {
		if _, ok := ipc.LookupMethod(name); !ok {
			t.Errorf("handler for %s, which the protocol table lacks", name)
		}
	}
}
