package ipc_test

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/mcpkey/mcpkey/ipc"
)

// TestDocListsTheMethods: the package documentation (the wire spec) has one
// paragraph "name — …" for each method of the protocol table, and none for
// a method the table lacks.
func TestDocListsTheMethods(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile(`(?m)^// ([a-z]+\.[a-z]+) — `).FindAllSubmatch(src, -1) {
		documented = append(documented, string(m[1]))
	}
	var table []string
	for _, m := range ipc.Methods() {
		table = append(table, m.Name)
		if !slices.Contains(documented, m.Name) {
			t.Errorf("doc.go does not document %s", m.Name)
		}
	}
	for _, d := range documented {
		if !slices.Contains(table, d) {
			t.Errorf("doc.go documents %s, which the protocol table lacks", d)
		}
	}
	if len(documented) != len(table) {
		t.Errorf("doc.go documents %d methods (%v), the table has %d", len(documented), documented, len(table))
	}
}

// TestMethodTable: names are unique and each method has a lookup.
func TestMethodTable(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range ipc.Methods() {
		if seen[m.Name] {
			t.Errorf("%s twice in the table", m.Name)
		}
		seen[m.Name] = true
		if got, ok := ipc.LookupMethod(m.Name); !ok || got.Name != m.Name {
			t.Errorf("LookupMethod(%s) = %v, %v", m.Name, got, ok)
		}
		if m.Notification && m.Result != nil {
			t.Errorf("notification %s has a result", m.Name)
		}
	}
	if _, ok := ipc.LookupMethod("no.such"); ok {
		t.Error("LookupMethod found no.such")
	}
}
