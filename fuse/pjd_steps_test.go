package fuse_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Step constructors for the pjd cases. Paths are relative to the case
// directory; modes are passed verbatim (the process umask applies where
// the system call applies it, on both sides alike).

func step(desc string, run func(c *pjdEnv) error) pjdStep { return pjdStep{desc: desc, run: run} }

func sMkdir(p string, mode uint32) pjdStep {
	return step(fmt.Sprintf("mkdir(%s,%o)", pjdShort(p), mode), func(c *pjdEnv) error { return unix.Mkdir(c.p(p), mode) })
}

func sMkfifo(p string, mode uint32) pjdStep {
	return step(fmt.Sprintf("mkfifo(%s,%o)", pjdShort(p), mode), func(c *pjdEnv) error { return unix.Mkfifo(c.p(p), mode) })
}

// sOpen opens p with flags (and mode) and closes it at once.
func sOpen(p string, flags int, mode uint32) pjdStep {
	return step(fmt.Sprintf("open(%s,%#x,%o)", pjdShort(p), flags, mode), func(c *pjdEnv) error {
		fd, err := unix.Open(c.p(p), flags|unix.O_CLOEXEC, mode)
		if err != nil {
			return err
		}
		return unix.Close(fd)
	})
}

func sCreate(p string, mode uint32) pjdStep {
	s := sOpen(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, mode)
	s.desc = fmt.Sprintf("create(%s,%o)", pjdShort(p), mode)
	return s
}

// sWrite opens p with flags, writes data and closes.
func sWrite(p string, flags int, data string) pjdStep {
	return step(fmt.Sprintf("write(%s,%#x,%d bytes)", pjdShort(p), flags, len(data)), func(c *pjdEnv) error {
		fd, err := unix.Open(c.p(p), flags|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		_, werr := unix.Write(fd, []byte(data))
		if err := unix.Close(fd); werr == nil {
			werr = err
		}
		return werr
	})
}

// sCreateWrite opens p O_CREAT|O_EXCL|O_RDWR with mode, writes data
// through that descriptor (allowed even when mode denies writing) and
// closes.
func sCreateWrite(p string, mode uint32, data string) pjdStep {
	return step(fmt.Sprintf("createwrite(%s,%o,%d bytes)", pjdShort(p), mode, len(data)), func(c *pjdEnv) error {
		fd, err := unix.Open(c.p(p), unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, mode)
		if err != nil {
			return err
		}
		_, werr := unix.Write(fd, []byte(data))
		if err := unix.Close(fd); werr == nil {
			werr = err
		}
		return werr
	})
}

func sSymlink(target, p string) pjdStep {
	return step(fmt.Sprintf("symlink(%s,%s)", pjdShort(target), pjdShort(p)), func(c *pjdEnv) error { return unix.Symlink(target, c.p(p)) })
}

func sLink(old, new string) pjdStep {
	return step(fmt.Sprintf("link(%s,%s)", pjdShort(old), pjdShort(new)), func(c *pjdEnv) error { return unix.Link(c.p(old), c.p(new)) })
}

func sLinkFollow(old, new string) pjdStep {
	return step(fmt.Sprintf("linkat_follow(%s,%s)", pjdShort(old), pjdShort(new)), func(c *pjdEnv) error {
		return unix.Linkat(unix.AT_FDCWD, c.p(old), unix.AT_FDCWD, c.p(new), unix.AT_SYMLINK_FOLLOW)
	})
}

func sRename(old, new string) pjdStep {
	return step(fmt.Sprintf("rename(%s,%s)", pjdShort(old), pjdShort(new)), func(c *pjdEnv) error { return unix.Rename(c.p(old), c.p(new)) })
}

func sRename2(old, new string, flags uint) pjdStep {
	return step(fmt.Sprintf("renameat2(%s,%s,%d)", pjdShort(old), pjdShort(new), flags), func(c *pjdEnv) error {
		return unix.Renameat2(unix.AT_FDCWD, c.p(old), unix.AT_FDCWD, c.p(new), flags)
	})
}

func sUnlink(p string) pjdStep {
	return step(fmt.Sprintf("unlink(%s)", pjdShort(p)), func(c *pjdEnv) error { return unix.Unlink(c.p(p)) })
}

func sRmdir(p string) pjdStep {
	return step(fmt.Sprintf("rmdir(%s)", pjdShort(p)), func(c *pjdEnv) error { return unix.Rmdir(c.p(p)) })
}

func sChmod(p string, mode uint32) pjdStep {
	return step(fmt.Sprintf("chmod(%s,%o)", pjdShort(p), mode), func(c *pjdEnv) error { return unix.Chmod(c.p(p), mode) })
}

func sFchmod(p string, mode uint32) pjdStep {
	return step(fmt.Sprintf("fchmod(%s,%o)", pjdShort(p), mode), func(c *pjdEnv) error {
		fd, err := unix.Open(c.p(p), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Fchmod(fd, mode)
	})
}

func sChown(p string, uid, gid int) pjdStep {
	return step(fmt.Sprintf("chown(%s,%d,%d)", pjdShort(p), uid, gid), func(c *pjdEnv) error { return unix.Chown(c.p(p), c.id(uid), c.id(gid)) })
}

func sLchown(p string, uid, gid int) pjdStep {
	return step(fmt.Sprintf("lchown(%s,%d,%d)", pjdShort(p), uid, gid), func(c *pjdEnv) error { return unix.Lchown(c.p(p), c.id(uid), c.id(gid)) })
}

func sTruncate(p string, size int64) pjdStep {
	return step(fmt.Sprintf("truncate(%s,%d)", pjdShort(p), size), func(c *pjdEnv) error { return unix.Truncate(c.p(p), size) })
}

// sFtruncate opens p with flags and truncates through the descriptor.
func sFtruncate(p string, flags int, size int64) pjdStep {
	return step(fmt.Sprintf("ftruncate(%s,%#x,%d)", pjdShort(p), flags, size), func(c *pjdEnv) error {
		fd, err := unix.Open(c.p(p), flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Ftruncate(fd, size)
	})
}

// Time values for sUtimens: UTIME_NOW and UTIME_OMIT, or explicit times.
var (
	tNow  = unix.Timespec{Nsec: unix.UTIME_NOW}
	tOmit = unix.Timespec{Nsec: unix.UTIME_OMIT}
)

func ts(sec, nsec int64) unix.Timespec { return unix.Timespec{Sec: sec, Nsec: nsec} }

func sUtimens(p string, atime, mtime unix.Timespec, flags int) pjdStep {
	return step(fmt.Sprintf("utimensat(%s,%s,%s,%#x)", pjdShort(p), tsString(atime), tsString(mtime), flags), func(c *pjdEnv) error {
		return unix.UtimesNanoAt(unix.AT_FDCWD, c.p(p), []unix.Timespec{atime, mtime}, flags)
	})
}

func tsString(t unix.Timespec) string {
	switch t.Nsec {
	case unix.UTIME_NOW:
		return "NOW"
	case unix.UTIME_OMIT:
		return "OMIT"
	}
	return fmt.Sprintf("%d.%09d", t.Sec, t.Nsec)
}

func sStat(p string) pjdStep {
	return step(fmt.Sprintf("stat(%s)", pjdShort(p)), func(c *pjdEnv) error {
		var st unix.Stat_t
		return unix.Stat(c.p(p), &st)
	})
}

func sLstat(p string) pjdStep {
	return step(fmt.Sprintf("lstat(%s)", pjdShort(p)), func(c *pjdEnv) error {
		var st unix.Stat_t
		return unix.Lstat(c.p(p), &st)
	})
}

// sRead opens p read-only and reads it to the end.
func sRead(p string) pjdStep {
	return step(fmt.Sprintf("read(%s)", pjdShort(p)), func(c *pjdEnv) error {
		_, err := os.ReadFile(c.p(p))
		return err
	})
}

// sReaddir lists p; the result names the entries.
func sReaddir(p string) pjdStep {
	return step(fmt.Sprintf("readdir(%s)", pjdShort(p)), func(c *pjdEnv) error {
		ents, err := os.ReadDir(c.p(p))
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return pe.Err
			}
			return err
		}
		names := make([]string, len(ents))
		for i, e := range ents {
			names[i] = e.Name()
		}
		return errors.New("entries [" + strings.Join(names, " ") + "]")
	})
}

// sStamp remembers p's times for a later sChanged, then waits a little so
// that any later change gets a later time.
func sStamp(p string) pjdStep {
	return step(fmt.Sprintf("stamp(%s)", pjdShort(p)), func(c *pjdEnv) error {
		var st unix.Stat_t
		if err := unix.Lstat(c.p(p), &st); err != nil {
			return err
		}
		c.stamps[p] = st
		waitTick()
		return nil
	})
}

// waitTick sleeps long enough for the clocks of both file systems to
// move on.
func waitTick() { time.Sleep(15 * time.Millisecond) }

// sChanged tells which of p's mtime and ctime changed since its stamp
// (as an error text, so that both sides' answers are compared).
func sChanged(p string) pjdStep {
	return step(fmt.Sprintf("changed(%s)", pjdShort(p)), func(c *pjdEnv) error {
		var st unix.Stat_t
		if err := unix.Lstat(c.p(p), &st); err != nil {
			return err
		}
		old := c.stamps[p]
		return fmt.Errorf("mtime changed %v, ctime changed %v", st.Mtim != old.Mtim, st.Ctim != old.Ctim)
	})
}
