package assets

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
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

// TestTemplateIcons checks what macOS needs of a template image: black
// shapes on transparent (only alpha counts), one silhouette per state.
func TestTemplateIcons(t *testing.T) {
	icons := map[string][]byte{
		"ready": IconReadyTemplate, "attention": IconAttentionTemplate,
		"locked": IconLockedTemplate, "error": IconErrorTemplate,
	}
	masks := map[string]string{}
	for name, b := range icons {
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := img.Bounds().Size(); got.X != 32 || got.Y != 32 {
			t.Errorf("%s: size %v, want 32x32", name, got)
		}
		if err := blackOnTransparent(img); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		// Coverage: a real shape, not an empty or a filled square.
		var mask strings.Builder
		solid := 0
		for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
			for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
				_, _, _, a := img.At(x, y).RGBA()
				if a >= 0x8000 {
					solid++
					mask.WriteByte('#')
				} else {
					mask.WriteByte('.')
				}
			}
		}
		if n := img.Bounds().Dx() * img.Bounds().Dy(); solid < n/6 || solid > n*2/3 {
			t.Errorf("%s: %d of %d pixels opaque", name, solid, n)
		}
		if other, dup := masks[mask.String()]; dup {
			t.Errorf("%s and %s have the same silhouette", name, other)
		}
		masks[mask.String()] = name
	}
}

// blackOnTransparent reports a pixel that is visible and not black.
func blackOnTransparent(img image.Image) error {
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			if r, g, b, a := img.At(x, y).RGBA(); a > 0 && (r|g|b) != 0 {
				return fmt.Errorf("pixel (%d,%d) is %v", x, y, img.At(x, y))
			}
		}
	}
	return nil
}

// TestGenerated runs the generator and checks the committed icons are its
// output, so nobody edits a PNG by hand or forgets to run it.
func TestGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go run ./gen")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	dir := t.TempDir()
	cmd := exec.Command(goTool, "run", "./gen", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./gen: %v\n%s", err, out)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.png"))
	if err != nil || len(files) != 8 {
		t.Fatalf("generator wrote %v (%v), want 8 icons", files, err)
	}
	for _, f := range files {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Base(f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generator's output: run go run ./assets/gen", filepath.Base(f))
		}
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
