package fuse_test

import (
	"errors"
	"fmt"
	"os"
	"sort"
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

// Steps that keep a descriptor open across other calls. Each returns a
// text describing what it saw (compared like an errno).

// fdSeen describes an open descriptor: fstat's link count and size and
// the whole content as read through it.
func fdSeen(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("fcntl: %w", err)
	}
	if flags&unix.O_ACCMODE == unix.O_WRONLY {
		return fmt.Errorf("fd: nlink=%d size=%d", st.Nlink, st.Size)
	}
	buf := make([]byte, st.Size+10)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil {
		return fmt.Errorf("pread: %w", err)
	}
	return fmt.Errorf("fd: nlink=%d size=%d content=%q", st.Nlink, st.Size, pjdShort(string(buf[:n])))
}

// sHolding opens p with flags, runs then (other steps, while the
// descriptor is open; their results are part of the result), writes data
// through the descriptor if any, describes it (fdSeen) and closes it.
func sHolding(p string, flags int, data string, then ...pjdStep) pjdStep {
	return holding(p, flags, "", data, then)
}

// sWriteHolding opens p with flags, writes data through the descriptor,
// runs then while it is open (the data may still be buffered), describes
// it and closes it.
func sWriteHolding(p string, flags int, data string, then ...pjdStep) pjdStep {
	return holding(p, flags, data, "", then)
}

func holding(p string, flags int, before, after string, then []pjdStep) pjdStep {
	var descs []string
	for _, s := range then {
		descs = append(descs, s.desc)
	}
	desc := fmt.Sprintf("holding(%s,%#x,write %q: %s; write %q)", pjdShort(p), flags, pjdShort(before), strings.Join(descs, ", "), pjdShort(after))
	return step(desc, func(c *pjdEnv) error {
		fd, err := unix.Open(c.p(p), flags|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		var res []string
		write := func(data string) {
			if data == "" {
				return
			}
			if _, err := unix.Write(fd, []byte(data)); err != nil {
				res = append(res, "write: "+errnoName(err))
			}
		}
		write(before)
		for _, s := range then {
			res = append(res, errnoName(s.run(c)))
		}
		write(after)
		res = append(res, errnoName(fdSeen(fd)))
		if err := unix.Close(fd); err != nil {
			res = append(res, "close: "+errnoName(err))
		}
		return errors.New(strings.Join(res, "; "))
	})
}

// sXattr sets name=value on p with flags (0, XATTR_CREATE,
// XATTR_REPLACE).
func sSetxattr(p, name, value string, flags int) pjdStep {
	return step(fmt.Sprintf("setxattr(%s,%s,%q,%d)", pjdShort(p), name, value, flags), func(c *pjdEnv) error {
		return unix.Lsetxattr(c.p(p), name, []byte(value), flags)
	})
}

// sGetxattr reads name of p into a buffer of size bytes; the result
// names the value.
func sGetxattr(p, name string, size int) pjdStep {
	return step(fmt.Sprintf("getxattr(%s,%s,%d)", pjdShort(p), name, size), func(c *pjdEnv) error {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(c.p(p), name, buf)
		if err != nil {
			return err
		}
		if size == 0 {
			return fmt.Errorf("size %d", n)
		}
		return fmt.Errorf("value %q", buf[:n])
	})
}

func sRemovexattr(p, name string) pjdStep {
	return step(fmt.Sprintf("removexattr(%s,%s)", pjdShort(p), name), func(c *pjdEnv) error { return unix.Lremovexattr(c.p(p), name) })
}

// sListxattr lists p's user.* attributes (others differ between file
// systems: security.selinux and the like).
func sListxattr(p string) pjdStep {
	return step(fmt.Sprintf("listxattr(%s)", pjdShort(p)), func(c *pjdEnv) error {
		buf := make([]byte, 4096)
		n, err := unix.Llistxattr(c.p(p), buf)
		if err != nil {
			return err
		}
		var names []string
		for _, nm := range strings.Split(string(buf[:n]), "\x00") {
			if strings.HasPrefix(nm, "user.") {
				names = append(names, nm)
			}
		}
		sort.Strings(names)
		return fmt.Errorf("names %v", names)
	})
}

func sMknod(p string, mode uint32, dev int) pjdStep {
	return step(fmt.Sprintf("mknod(%s,%o,%d)", pjdShort(p), mode, dev), func(c *pjdEnv) error { return unix.Mknod(c.p(p), mode, dev) })
}
