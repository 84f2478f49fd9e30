package fuse

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"

	"github.com/dfsproject/dfs/pkg/client"
)

// Options configures a mount. Start from DefaultOptions.
type Options struct {
	// FsName is the source shown in /proc/mounts, e.g. "127.0.0.2:/gv0".
	// Default: "dfs".
	FsName string
	// ReadOnly mounts read-only (mount -o ro): the kernel refuses writes
	// and every mutation fails with EROFS. Default: false.
	ReadOnly bool
	// AttrTimeout is how long the kernel caches attributes. Default 1 s.
	AttrTimeout time.Duration
	// EntryTimeout is how long the kernel caches directory entries.
	// Default 1 s. Failed lookups are not cached.
	EntryTimeout time.Duration
	// MaxWrite is the largest read or write request. Default 1 MiB; at
	// least 128 KiB.
	MaxWrite int
	// AllowOther lets every user use the mount (permissions are checked by
	// the kernel, default_permissions), as with an NFS export. Default
	// true.
	AllowOther bool
	// ReadAheadKB is the kernel's read-ahead window for the mount (the
	// read_ahead_kb of its backing device), set after mounting. The
	// kernel's default of 128 KiB keeps one 128 KiB request in flight and
	// caps a sequential read at about a third of what 1 MiB allows.
	// Default 1024; negative: leave the kernel's.
	ReadAheadKB int
	// Debug logs every FUSE request and reply at debug level.
	Debug bool
	// Logger receives the adapter's log messages. Default: discard.
	Logger *slog.Logger
}

// DefaultOptions returns the default Options.
func DefaultOptions() Options {
	return Options{
		FsName:       "dfs",
		AttrTimeout:  time.Second,
		EntryTimeout: time.Second,
		MaxWrite:     1 << 20,
		ReadAheadKB:  1024,
		AllowOther:   true,
		Logger:       slog.New(slog.DiscardHandler),
	}
}

// Limits of MaxWrite.
const (
	minMaxWrite = 128 << 10
	maxMaxWrite = 1 << 20
)

// MountPoint is a live FUSE mount of a volume, made by Mount. (The brief
// named this type Mount too; Go does not allow a type and a function of
// one name in a package, and callers only use Mount's result.)
type MountPoint struct {
	dir    string
	server *gofuse.Server
	fsys   *fsys
}

// Mount mounts vol on dir and returns once the mount is live. It mounts
// directly with mount(2) (the caller is root) and falls back to
// fusermount3 if that fails. The Volume must stay open until the mount
// ends; closing it is the caller's job.
func Mount(dir string, vol *client.Volume, opts Options) (*MountPoint, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.FsName == "" {
		opts.FsName = "dfs"
	}
	if opts.MaxWrite == 0 {
		opts.MaxWrite = maxMaxWrite
	}
	opts.MaxWrite = min(max(opts.MaxWrite, minMaxWrite), maxMaxWrite)
	if opts.AttrTimeout < 0 || opts.EntryTimeout < 0 {
		return nil, fmt.Errorf("fuse: negative cache timeout")
	}
	// Bound a detached mutation generously: the client already bounds each
	// RPC by its failover timeout; this only guards against a hang.
	mutationTimeout := 10 * max(vol.Config().FailoverTimeout, 10*time.Second)
	f := &fsys{vol: vol, opts: opts, logger: opts.Logger.With("mount", dir), mutationTimeout: mutationTimeout}
	root := &node{fsys: f, cn: vol.Root()}

	mo := []string{"default_permissions"}
	if opts.ReadOnly {
		mo = append(mo, "ro")
	}
	logLogger := slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug)
	attr, entry := opts.AttrTimeout, opts.EntryTimeout
	fo := &fs.Options{
		MountOptions: gofuse.MountOptions{
			AllowOther:   opts.AllowOther,
			Options:      mo,
			MaxWrite:     opts.MaxWrite,
			MaxReadAhead: opts.MaxWrite,
			FsName:       opts.FsName,
			Name:         "dfs",
			Debug:        opts.Debug,
			Logger:       logLogger,
			DirectMount:  true,
			// O_TRUNC arrives with OPEN instead of as a separate SETATTR.
			ExtraCapabilities: gofuse.CAP_ATOMIC_O_TRUNC,
			// No FUSE_AUTO_INVAL_DATA: this mount's own writes keep
			// the pages they leave in the kernel's cache; the mount
			// drops pages a commit made stale itself (inval.go).
			// Without an attribute cache there is nothing to watch
			// with: the kernel asks at every read, as before.
			ExplicitDataCacheControl: attr > 0,
			// Nor FUSE_EXPLICIT_INVAL_DATA: the kernel still drops a
			// file's pages when it learns another size (a last page
			// cached zero-filled past the old end would read zeros
			// where another client appended).
			DisabledCapabilities: gofuse.CAP_EXPLICIT_INVAL_DATA,
		},
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NullPermissions: true,
		Logger:          logLogger,
		RootStableAttr:  &fs.StableAttr{Ino: 1},
	}
	server, err := mountWithLocks(dir, root, fo, f)
	if err != nil {
		return nil, fmt.Errorf("fuse: mount %s on %s: %w", opts.FsName, dir, err)
	}
	if opts.ReadAheadKB > 0 {
		if err := setReadAhead(dir, opts.ReadAheadKB); err != nil {
			f.logger.Warn("cannot set the read-ahead window; sequential reads will be slower", "read_ahead_kb", opts.ReadAheadKB, "err", err)
		}
	}
	if attr > 0 {
		stop := make(chan struct{})
		go func() {
			server.Wait()
			close(stop)
		}()
		go f.watchOpenFiles(stop)
	}
	f.logger.Info("mounted", "source", opts.FsName, "read_only", opts.ReadOnly)
	return &MountPoint{dir: dir, server: server, fsys: f}, nil
}

// Wait blocks until the file system is unmounted (by umount(8) or
// Unmount).
func (m *MountPoint) Wait() { m.server.Wait() }

// Unmount unmounts the file system. It fails (EBUSY) while it is in use.
func (m *MountPoint) Unmount() error {
	if err := m.server.Unmount(); err != nil {
		return fmt.Errorf("fuse: unmount %s: %w", m.dir, err)
	}
	return nil
}

// Dir returns the mount point.
func (m *MountPoint) Dir() string { return m.dir }

// fsys is what every node of one mount shares.
type fsys struct {
	vol             *client.Volume
	opts            Options
	logger          *slog.Logger
	mutationTimeout time.Duration
	owners          *lockOwners // lock owners of FLUSH and RELEASE (locks.go)
	open            openFiles   // files open through the mount (inval.go)
}

// interruptGrace is how long a read-only request keeps running after a
// FUSE interrupt before it gives up with EINTR. Interrupts are mostly
// spurious (Go programs get them from the runtime's preemption signals,
// and syscall.Symlink or a C program's stat(2) does not expect EINTR), and
// a request that is not stuck finishes well within it; one that is stuck
// (the cluster is down) ends soon after Ctrl-C instead of after the
// failover timeout.
const interruptGrace = time.Second

// interruptible returns the context for a read-only call: cancelled
// interruptGrace after ctx is (by a FUSE interrupt). Callers must call
// done when the call returns.
func (f *fsys) interruptible(ctx context.Context) (_ context.Context, done func()) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var mu sync.Mutex
	var timer *time.Timer
	finished := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !finished {
			timer = time.AfterFunc(interruptGrace, cancel)
		}
	})
	return rctx, func() {
		stop()
		mu.Lock()
		finished = true
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

// mutation returns the context for a call that changes the volume: not
// cancelled by a FUSE interrupt (a half-done multi-step change must be
// finished), bounded by a generous timeout. Callers must call cancel.
func (f *fsys) mutation(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), f.mutationTimeout)
}

// setReadAhead sets read_ahead_kb of the backing device of the file
// system mounted on dir (FUSE mounts get an anonymous one, "0:N").
func setReadAhead(dir string, kb int) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return err
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	return os.WriteFile(path, []byte(strconv.Itoa(kb)), 0o644)
}
