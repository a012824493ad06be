package tray

import (
	"bytes"
	"image"
	"image/png"
	"testing"
)

// TestTrayIcon checks the format chosen for each state on each platform:
// PNG on Linux, ICO on Windows, and on macOS a PNG plus a template image
// that is black on transparent (the menu bar uses only its alpha).
func TestTrayIcon(t *testing.T) {
	for _, tc := range []struct {
		goos         string
		wantICO      bool
		wantTemplate bool
	}{
		{goos: "linux"},
		{goos: "freebsd"},
		{goos: "windows", wantICO: true},
		{goos: "darwin", wantTemplate: true},
	} {
		t.Run(tc.goos, func(t *testing.T) {
			icons := map[string]iconState{}
			templates := map[string]iconState{}
			for s := iconReady; s <= iconError; s++ {
				icon, template := trayIcon(s, tc.goos)
				if want := iconFile(s, tc.goos); !bytes.Equal(icon, want) {
					t.Errorf("%v: icon is not iconFile(%v, %q)", s, s, tc.goos)
				}
				if isICO := bytes.HasPrefix(icon, []byte{0, 0, 1, 0, 1, 0}); isICO != tc.wantICO {
					t.Errorf("%v: icon is ICO = %v, want %v", s, isICO, tc.wantICO)
				}
				if !tc.wantICO {
					if _, err := png.Decode(bytes.NewReader(icon)); err != nil {
						t.Errorf("%v: icon is not a PNG: %v", s, err)
					}
				}
				if other, dup := icons[string(icon)]; dup {
					t.Errorf("%v and %v share an icon", s, other)
				}
				icons[string(icon)] = s

				if !tc.wantTemplate {
					if template != nil {
						t.Errorf("%v: template image on %s", s, tc.goos)
					}
					continue
				}
				img, err := png.Decode(bytes.NewReader(template))
				if err != nil {
					t.Fatalf("%v: template is not a PNG: %v", s, err)
				}
				if visible := checkTemplate(t, s, img); visible == 0 {
					t.Errorf("%v: template is empty", s)
				}
				if other, dup := templates[string(template)]; dup {
					t.Errorf("%v and %v share a template", s, other)
				}
				templates[string(template)] = s
			}
		})
	}
}

// checkTemplate reports every visible pixel of img that is not black, and
// returns how many pixels are visible.
func checkTemplate(t *testing.T, s iconState, img image.Image) (visible int) {
	t.Helper()
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			if a == 0 {
				continue
			}
			visible++
			if r|g|bl != 0 {
				t.Errorf("%v: template pixel (%d,%d) is %v, want black or transparent", s, x, y, img.At(x, y))
				return visible
			}
		}
	}
	return visible
}
