package tray

import (
	"bytes"
	"encoding/binary"
	"image/png"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	clock := now
	l := newLimiter(func() time.Time { return clock })
	step := func(d time.Duration) { clock = clock.Add(d) }
	check := func(key string, wantOK bool, wantHeld int) {
		t.Helper()
		ok, held := l.allow(key)
		if ok != wantOK || held != wantHeld {
			t.Errorf("at +%v allow(%q) = %v, %d; want %v, %d", clock.Sub(now), key, ok, held, wantOK, wantHeld)
		}
	}
	check("a", true, 0)
	step(time.Second)
	check("a", false, 0) // one per key per minute, repeats not counted
	step(58 * time.Second)
	check("a", false, 0)
	check("b", true, 0) // a left the 10 s window
	check("c", true, 0)
	check("d", true, 0)
	check("e", false, 0) // a fourth within 10 s: held back, counted
	check("f", false, 0)
	step(time.Second)
	check("a", false, 0) // a minute after a, but the burst is spent
	step(10 * time.Second)
	check("a", true, 3) // the next one shown mentions the three held back
	check("e", true, 0)
}

func TestICO(t *testing.T) {
	for s := iconReady; s <= iconError; s++ {
		p := iconFile(s, "linux")
		if _, err := png.Decode(bytes.NewReader(p)); err != nil {
			t.Fatalf("%v: not a PNG: %v", s, err)
		}
		ico := iconFile(s, "windows")
		var hdr struct {
			Reserved, Type, Count uint16
			W, H, Colors, _       uint8
			Planes, BPP           uint16
			Size, Offset          uint32
		}
		if err := binary.Read(bytes.NewReader(ico), binary.LittleEndian, &hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Type != 1 || hdr.Count != 1 || hdr.W != 64 || hdr.H != 64 || hdr.BPP != 32 ||
			int(hdr.Size) != len(p) || hdr.Offset != 22 || !bytes.Equal(ico[22:], p) {
			t.Errorf("%v: ICO header %+v", s, hdr)
		}
	}
}
