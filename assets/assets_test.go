package assets

import (
	"bytes"
	"crypto/sha256"
	"image/png"
	"strings"
	"testing"
)

func TestIconsArePNG64(t *testing.T) {
	icons := map[string][]byte{"ready": IconReady, "attention": IconAttention, "locked": IconLocked, "error": IconError}
	seen := map[[32]byte]string{}
	for name, b := range icons {
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := img.Bounds().Size(); got.X != 64 || got.Y != 64 {
			t.Errorf("%s: size %v, want 64x64", name, got)
		}
		sum := sha256.Sum256(b)
		if other, dup := seen[sum]; dup {
			t.Errorf("%s and %s are the same image", name, other)
		}
		seen[sum] = name
	}
}

func TestCallbackPages(t *testing.T) {
	if !bytes.Contains(CallbackHTML, []byte("Signed in to mcpkey")) {
		t.Error("success page lacks its heading")
	}
	var buf bytes.Buffer
	if err := RenderCallbackError(&buf, `<script>alert("x")</script> & more`); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "<script>") {
		t.Errorf("error page did not escape the message:\n%s", out)
	}
	if !strings.Contains(out, "&lt;script&gt;") || !strings.Contains(out, "&amp; more") {
		t.Errorf("error page lacks the escaped message:\n%s", out)
	}
}
