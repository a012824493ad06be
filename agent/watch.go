package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long the config watcher waits after the last change
// before it re-reads the file.
const DefaultDebounce = 100 * time.Millisecond

// WatchOptions configures WatchSettings. The zero value is usable.
type WatchOptions struct {
	// Debounce is the quiet time after the last change to the file before it
	// is re-read; 0 means DefaultDebounce. Editors save in bursts (a
	// truncate then a write, or a temporary file renamed over the config),
	// and a burst is read once. A file that keeps changing is still re-read
	// at least every 10 × Debounce.
	Debounce time.Duration
	// Current is the Settings the caller runs with (from LoadSettings), so
	// only real changes are applied; a change made between that load and
	// the start of the watch is caught. nil means whatever the file holds
	// when the watch starts.
	Current *Settings
	// Logger receives the watcher's logs; nil discards them.
	Logger *slog.Logger
}

// SettingsWatcher follows the config file; see WatchSettings.
type SettingsWatcher struct {
	reload chan chan error
	done   chan struct{}
}

var errWatcherStopped = errors.New("config watcher stopped")

// WatchSettings watches the config file at path and calls apply with each
// new valid version, or onError (when not nil) with the reason a new version
// cannot be used: a *SettingsError for a bad file, or a read error. The
// caller keeps running on the settings it has when onError is called. apply
// and onError are called from one goroutine, never concurrently, and only
// for changes: saving the same settings again (or editing a comment) calls
// neither. A removed file means "no config file": apply gets the empty
// Settings, as LoadSettings returns for a missing file.
//
// The watch is on the file's directory (fsnotify), not on the file, since
// editors that save by renaming a temporary file over the config would end
// a watch on the file itself. When the directory does not exist (or is
// removed or replaced), the nearest existing ancestor is watched until the
// directory appears, then the directory again. Events on NFS, SMB and FUSE
// mounts are not delivered by the OS; Reload still works there. A config
// that is a symbolic link is followed when read, but edits to the link's
// target elsewhere are only seen through Reload.
//
// WatchSettings returns once the watch is in place; the watcher runs until
// ctx ends (Done is closed then).
func WatchSettings(ctx context.Context, path string, opts WatchOptions, apply func(*Settings), onError func(error)) (*SettingsWatcher, error) {
	if apply == nil {
		return nil, errors.New("watch config: apply is nil")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("watch config %s: %w", path, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if onError == nil {
		onError = func(error) {}
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch config %s: %w", path, err)
	}
	st := &settingsState{path: path, apply: apply, onError: onError, log: logger, last: opts.Current}
	w := &SettingsWatcher{reload: make(chan chan error), done: make(chan struct{})}
	l := &watchLoop{
		path:     abs,
		dir:      filepath.Dir(abs),
		debounce: newDebouncer(opts.Debounce),
		fs:       fw,
		events:   fw.Events,
		errors:   fw.Errors,
		check:    st.check,
		reload:   w.reload,
		log:      logger,
	}
	if err := l.rewatch(); err != nil {
		fw.Close()
		return nil, fmt.Errorf("watch config %s: %w", path, err)
	}
	// Read the baseline only now that the watch is in place, so that no
	// change can fall between the two.
	if opts.Current == nil {
		st.last, err = LoadSettings(path)
		st.failed = err != nil
	} else {
		l.debounce.trigger()
	}
	go func() {
		defer close(w.done)
		defer fw.Close()
		l.run(ctx)
	}()
	return w, nil
}

// Reload re-reads the config file now, as SIGHUP asks, through the same path
// as a change on disk: apply gets the new settings (even when unchanged, so
// the caller can report the reload) or onError the reason they cannot be
// used, which Reload also returns.
func (w *SettingsWatcher) Reload() error {
	reply := make(chan error, 1)
	select {
	case w.reload <- reply:
	case <-w.done:
		return errWatcherStopped
	}
	select {
	case err := <-reply:
		return err
	case <-w.done:
		return errWatcherStopped
	}
}

// Done is closed when the watcher has stopped.
func (w *SettingsWatcher) Done() <-chan struct{} { return w.done }

// settingsState is the last good settings and the re-read logic; used only
// from the watch loop's goroutine.
type settingsState struct {
	path    string
	apply   func(*Settings)
	onError func(error)
	log     *slog.Logger
	last    *Settings // the settings in force
	failed  bool      // the last read was refused: the next good one is applied even if equal to last
}

func (st *settingsState) check(force bool) error {
	s, err := LoadSettings(st.path)
	if err != nil {
		st.failed = true
		st.onError(err)
		return err
	}
	if !force && !st.failed && reflect.DeepEqual(s, st.last) {
		st.log.Debug("config unchanged", "path", st.path)
		return nil
	}
	st.last, st.failed = s, false
	st.apply(s)
	return nil
}

// fsWatcher is the part of *fsnotify.Watcher the loop uses.
type fsWatcher interface {
	Add(name string) error
	Remove(name string) error
}

// watchLoop turns file system events into debounced re-reads. It is
// separate from fsnotify's setup so that tests can drive it with their own
// event channel under testing/synctest.
type watchLoop struct {
	path     string // absolute, clean config path
	dir      string // filepath.Dir(path)
	debounce *debouncer
	fs       fsWatcher // nil: the directory is never re-watched (tests)
	watched  string    // the directory being watched: dir, or an ancestor while dir is missing
	events   <-chan fsnotify.Event
	errors   <-chan error
	check    func(force bool) error
	reload   <-chan chan error
	log      *slog.Logger
}

func (l *watchLoop) run(ctx context.Context) {
	defer l.debounce.stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-l.events:
			if !ok {
				return
			}
			l.event(ev)
		case err, ok := <-l.errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				l.log.Warn("config watch: events lost; re-reading the config", "path", l.path)
				l.debounce.trigger()
				continue
			}
			l.log.Warn("config watch", "path", l.path, "err", err)
		case <-l.debounce.C():
			l.debounce.fired()
			if err := l.check(false); err != nil {
				l.log.Debug("config re-read refused", "path", l.path, "err", err)
			}
		case reply := <-l.reload:
			l.debounce.stop()
			reply <- l.check(true)
		}
	}
}

func (l *watchLoop) event(ev fsnotify.Event) {
	name := filepath.Clean(ev.Name)
	l.log.Debug("config watch event", "name", name, "op", ev.Op.String())
	switch {
	case name == l.path:
		// Chmod alone (touch, a backup tool) changes nothing we read.
		if ev.Op&(fsnotify.Create|fsnotify.Write|fsnotify.Rename|fsnotify.Remove) != 0 {
			l.debounce.trigger()
		}
	case name == l.watched && ev.Op&(fsnotify.Remove|fsnotify.Rename) != 0:
		// The watched directory itself went away or was moved: watch what
		// is there now.
		l.rewatchAndCheck()
	case l.watched != l.dir && name == childToward(l.watched, l.dir) && ev.Op&fsnotify.Create != 0:
		// A missing directory on the way to the config appeared.
		l.rewatchAndCheck()
	}
}

func (l *watchLoop) rewatchAndCheck() {
	if l.fs == nil {
		return
	}
	if err := l.rewatch(); err != nil {
		l.log.Warn("config watch: cannot watch the config directory; use SIGHUP to reload", "path", l.path, "err", err)
		return
	}
	// Whatever happened in the new directory before the watch was added
	// sent no event: look.
	l.debounce.trigger()
}

// rewatch watches the config's directory, or its nearest existing ancestor
// while it is missing.
func (l *watchLoop) rewatch() error {
	if l.watched != "" {
		_ = l.fs.Remove(l.watched) // may be gone already
		l.watched = ""
	}
	for range 100 { // bounded: directories created and removed in a loop
		d := nearestDir(l.dir)
		if err := l.fs.Add(d); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed between the stat and the add
			}
			return err
		}
		l.watched = d
		// The next directory down may have appeared before the watch was
		// added, and then no event will tell: go down while it has.
		if d == l.dir || !isDir(childToward(d, l.dir)) {
			l.log.Debug("config watch", "dir", d)
			return nil
		}
		_ = l.fs.Remove(d)
		l.watched = ""
	}
	return errors.New("the config directory keeps changing")
}

func nearestDir(dir string) string {
	for {
		if isDir(dir) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// childToward returns the entry of ancestor that leads to dir.
func childToward(ancestor, dir string) string {
	rel, err := filepath.Rel(ancestor, dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return ""
	}
	first, _, _ := strings.Cut(rel, string(filepath.Separator))
	return filepath.Join(ancestor, first)
}

// debouncer fires once the triggers have been quiet for wait, or at the
// latest maxWait after the first trigger of a burst. It uses the time
// package only, so testing/synctest drives it with a fake clock.
type debouncer struct {
	wait, maxWait time.Duration
	timer         *time.Timer
	first         time.Time // start of the pending burst; zero when idle
}

func newDebouncer(wait time.Duration) *debouncer {
	if wait <= 0 {
		wait = DefaultDebounce
	}
	return &debouncer{wait: wait, maxWait: 10 * wait}
}

// trigger notes a change.
func (d *debouncer) trigger() {
	now := time.Now()
	if d.first.IsZero() {
		d.first = now
	}
	delay := min(d.wait, d.first.Add(d.maxWait).Sub(now))
	if d.timer == nil {
		d.timer = time.NewTimer(delay)
		return
	}
	d.timer.Reset(delay) // Go ≥ 1.23: Reset discards a pending fire
}

// C fires when the burst is over; nil (never ready) when idle.
func (d *debouncer) C() <-chan time.Time {
	if d.first.IsZero() || d.timer == nil {
		return nil
	}
	return d.timer.C
}

// fired is called after C delivered.
func (d *debouncer) fired() { d.first = time.Time{} }

func (d *debouncer) stop() {
	d.first = time.Time{}
	if d.timer != nil {
		d.timer.Stop()
	}
}
