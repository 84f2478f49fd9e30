package fuse_test

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Names at the limit: NAME_MAX (255) must work, one byte more is
// ENAMETOOLONG.
var (
	n255 = strings.Repeat("x", 255)
	n256 = strings.Repeat("y", 256)
)

const (
	oRW     = unix.O_RDWR
	oWR     = unix.O_WRONLY
	oRD     = unix.O_RDONLY
	oCreat  = unix.O_CREAT
	oExcl   = unix.O_EXCL
	oTrunc  = unix.O_TRUNC
	oAppend = unix.O_APPEND
)

// ss is a list of steps.
func ss(s ...pjdStep) []pjdStep { return s }

// Setup helpers (run as root).

// sMine gives p to the user under test.
func sMine(p string) pjdStep { return sLchown(p, uMe, gMe) }

// sFile creates p with data and exactly mode.
func sFile(p string, mode uint32, data string) []pjdStep {
	return ss(sCreateWrite(p, 0o600, data), sChmod(p, mode))
}

// sDir creates directory p with exactly mode.
func sDir(p string, mode uint32) []pjdStep { return ss(sMkdir(p, 0o700), sChmod(p, mode)) }

// cat concatenates step lists.
func cat(lists ...[]pjdStep) []pjdStep {
	var out []pjdStep
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// myFile is a file of the user under test, mode 0644, with a few bytes.
func myFile(p string) []pjdStep { return append(sFile(p, 0o644, "hello"), sMine(p)) }

// myDir is a directory of the user under test, mode 0755.
func myDir(p string) []pjdStep { return append(sDir(p, 0o755), sMine(p)) }

// loop makes symlinks a -> b -> a.
func loop() []pjdStep {
	return ss(sSymlink("b", "a"), sSymlink("a", "b"), sLchown("a", uMe, gMe), sLchown("b", uMe, gMe))
}

// pjdCases returns every case, in a fixed order (the child process finds
// its cases by index).
func pjdCases() []pjdCase {
	var cs []pjdCase
	add := func(name string, setup []pjdStep, steps ...pjdStep) {
		cs = append(cs, pjdCase{name: name, setup: setup, steps: steps})
	}

	// chmod
	for _, m := range []uint32{0, 0o600, 0o755, 0o4755, 0o2755, 0o1755, 0o7777} {
		add(fmt.Sprintf("chmod_file_%o", m), myFile("f"), sChmod("f", m), sStat("f"))
		add(fmt.Sprintf("chmod_dir_%o", m), myDir("d"), sChmod("d", m))
	}
	add("chmod_fifo", ss(sMkfifo("p", 0o644), sMine("p")), sChmod("p", 0o600))
	add("chmod_fchmod", myFile("f"), sFchmod("f", 0o640))
	add("chmod_enoent", nil, sChmod("nope", 0o644), sChmod("nodir/x", 0o644))
	add("chmod_enotdir", myFile("f"), sChmod("f/x", 0o644))
	add("chmod_nametoolong", myFile(n255), sChmod(n255, 0o600), sChmod(n256, 0o600))
	add("chmod_symlink", cat(myFile("f"), ss(sSymlink("f", "l"))), sChmod("l", 0o700))
	add("chmod_eloop", loop(), sChmod("a", 0o644))
	add("chmod_notowner", sFile("f", 0o644, "x"), sChmod("f", 0o600))
	add("chmod_eacces", cat(sDir("d", 0o755), sFile("d/f", 0o644, ""), ss(sMine("d/f"), sChmod("d", 0o644))), sChmod("d/f", 0o600))
	add("chmod_sgid_nonmember", cat(myFile("f"), ss(sLchown("f", uMe, 0))), sChmod("f", 0o2755))
	add("chmod_ctime", myFile("f"), sStamp("f"), sChmod("f", 0o600), sChanged("f"))

	// chown
	add("chown_other_uid", myFile("f"), sChown("f", pjdOtherUID, -1))
	add("chown_other_gid", myFile("f"), sChown("f", -1, pjdOtherGID))
	add("chown_supp_gid", myFile("f"), sChown("f", -1, pjdSuppGroup))
	add("chown_same", myFile("f"), sChown("f", uMe, gMe))
	add("chown_nothing", myFile("f"), sChown("f", -1, -1))
	add("chown_notowner", sFile("f", 0o644, "x"), sChown("f", -1, gMe))
	add("chown_suid_file", cat(myFile("f"), ss(sChmod("f", 0o6755))), sChown("f", uMe, gMe))
	add("chown_sgid_noexec", cat(myFile("f"), ss(sChmod("f", 0o2644))), sChown("f", -1, gMe))
	add("chown_suid_dir", cat(myDir("d"), ss(sChmod("d", 0o6755))), sChown("d", uMe, gMe))
	add("chown_symlink", cat(myFile("f"), ss(sSymlink("f", "l"), sMine("l"))), sChown("l", -1, pjdSuppGroup))
	add("lchown_symlink", cat(myFile("f"), ss(sSymlink("f", "l"), sMine("l"))), sLchown("l", -1, pjdSuppGroup))
	add("chown_enoent", nil, sChown("nope", -1, -1), sLchown("nodir/x", -1, -1))
	add("chown_enotdir", myFile("f"), sChown("f/x", -1, -1))
	add("chown_nametoolong", myFile(n255), sChown(n255, -1, gMe), sChown(n256, -1, gMe))
	add("chown_eloop", loop(), sChown("a", -1, -1))
	add("chown_eacces", cat(sDir("d", 0o700), myFile("d/f")), sChown("d/f", -1, gMe))
	add("chown_ctime", myFile("f"), sStamp("f"), sChown("f", -1, gMe), sChanged("f"))

	// link
	add("link_same_dir", myFile("f"), sLink("f", "g"), sStat("g"))
	add("link_cross_dir", cat(myDir("a"), myDir("b"), myFile("a/f")), sLink("a/f", "b/g"), sLink("b/g", "h"), sUnlink("a/f"))
	add("link_eexist", cat(myFile("f"), myFile("g"), myDir("d"), ss(sSymlink("nope", "l"), sMkfifo("p", 0o644))),
		sLink("f", "g"), sLink("f", "d"), sLink("f", "l"), sLink("f", "p"))
	add("link_dir", myDir("d"), sLink("d", "e"))
	add("link_enoent", myFile("f"), sLink("nope", "x"), sLink("f", "nodir/x"))
	add("link_enotdir", myFile("f"), sLink("f/x", "y"), sLink("f", "f/y"))
	add("link_nametoolong", myFile("f"), sLink("f", n255), sLink("f", n256), sLink(n256, "g"))
	add("link_eacces_target", cat(myFile("f"), sDir("d", 0o755)), sLink("f", "d/g"))
	add("link_eacces_search", cat(sDir("d", 0o755), myFile("d/f"), ss(sChmod("d", 0o644))), sLink("d/f", "g"))
	add("link_symlink", cat(myFile("f"), ss(sSymlink("f", "l"))), sLink("l", "h"), sLinkFollow("l", "h2"))
	add("link_fifo", ss(sMkfifo("p", 0o644), sMine("p")), sLink("p", "q"))
	add("link_protected", sFile("f", 0o600, "x"), sLink("f", "g"))
	add("link_then_unlink", myFile("f"), sLink("f", "g"), sLink("f", "h"), sUnlink("f"), sStat("g"))
	add("link_times", cat(myDir("a"), myFile("f")), sStamp("f"), sStamp("a"), sLink("f", "a/g"), sChanged("f"), sChanged("a"))

	// mkdir
	for _, m := range []uint32{0, 0o700, 0o755, 0o777, 0o1777, 0o2755} {
		add(fmt.Sprintf("mkdir_%o", m), nil, sMkdir("d", m), sStat("d"))
	}
	add("mkdir_eexist", cat(myFile("f"), myDir("d"), ss(sSymlink("nope", "l"), sMkfifo("p", 0o644))),
		sMkdir("f", 0o755), sMkdir("d", 0o755), sMkdir("l", 0o755), sMkdir("p", 0o755))
	add("mkdir_enoent", nil, sMkdir("a/b", 0o755))
	add("mkdir_enotdir", myFile("f"), sMkdir("f/x", 0o755))
	add("mkdir_nametoolong", nil, sMkdir(n255, 0o755), sMkdir(n256, 0o755))
	add("mkdir_eacces", cat(sDir("d", 0o755), sDir("e", 0o711), sDir("s", 0o777), ss(sChmod("s", 0o644))),
		sMkdir("d/x", 0o755), sMkdir("e/x", 0o755), sMkdir("s/x", 0o755))
	add("mkdir_sgid_parent", cat(myDir("d"), ss(sLchown("d", uMe, pjdSuppGroup), sChmod("d", 0o2775))),
		sMkdir("d/x", 0o755), sCreate("d/f", 0o2755), sMkfifo("d/p", 0o644), sSymlink("t", "d/l"))
	add("mkdir_parent", myDir("d"), sStamp("d"), sMkdir("d/x", 0o755), sChanged("d"), sMkdir("d/y", 0o755))
	add("mkdir_slash", myFile("f"), sMkdir("d/", 0o755), sMkdir("f/", 0o755), sMkdir("d//e//", 0o755))
	add("mkdir_eloop", loop(), sMkdir("a/x", 0o755))
	add("mkdir_via_symlink", cat(myDir("d"), ss(sSymlink("d", "l"))), sMkdir("l/x", 0o755), sStat("d/x"))

	// mkfifo
	for _, m := range []uint32{0o644, 0o600, 0o777, 0o4755} {
		add(fmt.Sprintf("mkfifo_%o", m), nil, sMkfifo("p", m))
	}
	add("mkfifo_eexist", cat(myFile("f"), myDir("d"), ss(sSymlink("nope", "l"), sMkfifo("p", 0o644))),
		sMkfifo("f", 0o644), sMkfifo("d", 0o644), sMkfifo("l", 0o644), sMkfifo("p", 0o644))
	add("mkfifo_enoent", nil, sMkfifo("a/p", 0o644))
	add("mkfifo_enotdir", myFile("f"), sMkfifo("f/p", 0o644))
	add("mkfifo_nametoolong", nil, sMkfifo(n255, 0o644), sMkfifo(n256, 0o644))
	add("mkfifo_eacces", sDir("d", 0o755), sMkfifo("d/p", 0o644))
	add("mkfifo_open", nil, sMkfifo("p", 0o666), sOpen("p", oRW, 0), sOpen("p", oRD|unix.O_NONBLOCK, 0), sOpen("p", oWR|unix.O_NONBLOCK, 0))
	add("mkfifo_parent", myDir("d"), sStamp("d"), sMkfifo("d/p", 0o644), sChanged("d"))

	// open
	for _, m := range []uint32{0, 0o644, 0o600, 0o4755, 0o2755} {
		add(fmt.Sprintf("open_create_%o", m), nil, sCreateWrite("f", m, "data"), sOpen("f", oRD, 0))
	}
	add("open_excl", cat(myFile("f"), myDir("d"), ss(sSymlink("f", "l"), sSymlink("nope", "dl"))),
		sOpen("f", oCreat|oExcl|oWR, 0o644), sOpen("d", oCreat|oExcl|oRD, 0o644),
		sOpen("l", oCreat|oExcl|oWR, 0o644), sOpen("dl", oCreat|oExcl|oWR, 0o644))
	add("open_creat_dangling", ss(sSymlink("target", "l"), sMine("l")), sOpen("l", oCreat|oWR, 0o640), sStat("target"))
	add("open_creat_existing", myFile("f"), sOpen("f", oCreat|oWR, 0o600))
	add("open_enoent", nil, sOpen("nope", oRD, 0), sOpen("nodir/x", oCreat|oWR, 0o644))
	add("open_eisdir", myDir("d"), sOpen("d", oWR, 0), sOpen("d", oRW, 0), sOpen("d", oCreat|oWR, 0o644), sOpen("d", oRD, 0))
	add("open_enotdir", myFile("f"), sOpen("f", oRD|unix.O_DIRECTORY, 0), sOpen("f/x", oRD, 0), sOpen("f/x", oCreat|oWR, 0o644))
	add("open_eloop", cat(loop(), myFile("f"), ss(sSymlink("f", "l"))),
		sOpen("a", oRD, 0), sOpen("a", oCreat|oWR, 0o644), sOpen("l", oRD|unix.O_NOFOLLOW, 0))
	add("open_nametoolong", nil, sOpen(n255, oCreat|oWR, 0o644), sOpen(n256, oCreat|oWR, 0o644), sOpen(n256, oRD, 0))
	add("open_eacces", cat(sFile("f", 0o644, "x"), sFile("z", 0o000, "x"), sFile("r", 0o444, "x"), sDir("d", 0o755), sDir("s", 0o700), sFile("s/f", 0o666, "")),
		sOpen("f", oWR, 0), sOpen("f", oRD, 0), sOpen("z", oRD, 0), sOpen("r", oWR|oTrunc, 0),
		sOpen("d/new", oCreat|oWR, 0o644), sOpen("s/f", oRD, 0))
	add("open_owner_readonly", append(sFile("f", 0o444, "abc"), sMine("f")), sOpen("f", oRW, 0), sWrite("f", oWR, "x"))
	add("open_trunc", myFile("f"), sOpen("f", oWR|oTrunc, 0))
	add("open_trunc_rdonly", myFile("f"), sOpen("f", oRD|oTrunc, 0))
	add("open_trunc_times", myFile("f"), sStamp("f"), sOpen("f", oWR|oTrunc, 0), sChanged("f"), sStamp("f"), sOpen("f", oWR|oTrunc, 0), sChanged("f"))
	add("open_append", myFile("f"), sWrite("f", oWR|oAppend, " world"), sWrite("f", oWR|oAppend, "!"))
	add("open_write_times", myFile("f"), sStamp("f"), sWrite("f", oWR, "HE"), sChanged("f"))
	add("open_write_kills_suid", cat(myFile("f"), ss(sChmod("f", 0o6777))), sWrite("f", oWR, "x"))
	add("open_create_parent", myDir("d"), sStamp("d"), sCreate("d/f", 0o644), sChanged("d"))
	add("open_fifo_nonblock", ss(sMkfifo("p", 0o666)), sOpen("p", oWR|unix.O_NONBLOCK, 0))

	// rename
	add("rename_file", myFile("f"), sRename("f", "g"), sStat("g"))
	add("rename_file_cross", cat(myDir("a"), myDir("b"), myFile("a/f")), sRename("a/f", "b/g"), sRename("b/g", "h"))
	add("rename_dir_cross", cat(myDir("a"), myDir("b"), myDir("a/d"), myFile("a/d/x")), sRename("a/d", "b/e"), sStat("b/e/x"))
	add("rename_replace_file", cat(myFile("f"), sFile("g", 0o600, "other")), sRename("f", "g"))
	add("rename_replace_file_cross", cat(myDir("a"), myDir("b"), myFile("a/f"), myFile("b/g"), ss(sLink("b/g", "keep"))), sRename("a/f", "b/g"))
	add("rename_replace_dir", cat(myDir("d"), myDir("e"), myFile("d/x")), sRename("d", "e"))
	add("rename_replace_dir_cross", cat(myDir("a"), myDir("b"), myDir("a/d"), myDir("b/e")), sRename("a/d", "b/e"))
	add("rename_notempty", cat(myDir("d"), myDir("e"), myFile("e/x")), sRename("d", "e"))
	add("rename_file_over_dir", cat(myFile("f"), myDir("d")), sRename("f", "d"))
	add("rename_dir_over_file", cat(myFile("f"), myDir("d")), sRename("d", "f"))
	add("rename_into_self", cat(myDir("d"), myDir("d/s")), sRename("d", "d/s/x"), sRename("d/s", "d"))
	add("rename_same", myFile("f"), sRename("f", "f"))
	add("rename_hardlinks", cat(myFile("f"), ss(sLink("f", "g"))), sRename("f", "g"))
	add("rename_symlink", ss(sSymlink("target", "l"), sMine("l")), sRename("l", "m"))
	add("rename_fifo_cross", cat(myDir("a"), ss(sMkfifo("p", 0o644), sMine("p"))), sRename("p", "a/p"))
	add("rename_enoent", cat(myFile("f")), sRename("nope", "x"), sRename("f", "nodir/x"))
	add("rename_enotdir", cat(myFile("f"), myFile("g")), sRename("f/x", "y"), sRename("g", "f/y"))
	add("rename_nametoolong", cat(myFile("f"), myFile(n255)), sRename("f", n256), sRename(n256, "g"), sRename(n255, "h"), sRename("f", n255))
	add("rename_eacces", cat(sDir("d", 0o755), myFile("d/f"), myFile("g")), sRename("d/f", "f"), sRename("g", "d/g"))
	add("rename_sticky", cat(sDir("t", 0o1777), sFile("t/root", 0o666, "r"), myFile("t/mine"), sFile("t/victim", 0o666, "v")),
		sRename("t/root", "t/x"), sRename("t/mine", "t/victim"), sRename("t/mine", "t/m2"))
	add("rename_dir_needs_write", cat(myDir("a"), myDir("b"), sDir("a/d", 0o755)), sRename("a/d", "a/e"), sRename("a/e", "b/d"))
	add("rename_noreplace", cat(myFile("f"), myFile("g")), sRename2("f", "g", unix.RENAME_NOREPLACE), sRename2("f", "h", unix.RENAME_NOREPLACE))
	add("rename_exchange", cat(sFile("f", 0o644, "file"), myDir("d"), sFile("g", 0o600, "g")),
		sRename2("f", "d", unix.RENAME_EXCHANGE), sRename2("d", "g", unix.RENAME_EXCHANGE), sRename2("f", "nope", unix.RENAME_EXCHANGE))
	add("rename_exchange_dirs", cat(sFile("f", 0o644, "file"), myDir("a"), myDir("d"), sFile("a/g", 0o600, "g"), myDir("a/e")),
		sRename2("f", "a/g", unix.RENAME_EXCHANGE), sRename2("d", "a/e", unix.RENAME_EXCHANGE), sRename2("a/g", "d", unix.RENAME_EXCHANGE))
	add("rename_times", cat(myDir("a"), myDir("b"), myFile("a/f")), sStamp("a/f"), sStamp("a"), sStamp("b"),
		sRename("a/f", "b/f"), sChanged("b/f"), sChanged("a"), sChanged("b"))
	add("rename_dot", myDir("d"), sRename("d/.", "e"), sRename("d", "d/.."), sRename("d/..", "e"))
	add("rename_slash", cat(myFile("f"), myDir("d")), sRename("f/", "g"), sRename("f", "g/"), sRename("d/", "e/"), sRename("e", "d/"))

	// rmdir
	add("rmdir", cat(myDir("d"), myDir("d/e")), sRmdir("d/e"), sRmdir("d"))
	add("rmdir_notempty", cat(myDir("a"), myFile("a/f"), myDir("b"), myDir("b/s"), myDir("c"), ss(sSymlink("x", "c/l")), myDir("e"), ss(sMkfifo("e/p", 0o644))),
		sRmdir("a"), sRmdir("b"), sRmdir("c"), sRmdir("e"))
	add("rmdir_enotdir", cat(myFile("f"), myDir("d"), ss(sSymlink("d", "l"))), sRmdir("f"), sRmdir("l"), sRmdir("f/x"))
	add("rmdir_enoent", nil, sRmdir("nope"), sRmdir("nodir/x"))
	add("rmdir_nametoolong", myDir(n255), sRmdir(n256), sRmdir(n255))
	add("rmdir_dot", cat(myDir("d"), myDir("d/e")), sRmdir("d/e/."), sRmdir("d/e/.."))
	add("rmdir_eacces", cat(sDir("r", 0o755), myDir("r/s")), sRmdir("r/s"))
	add("rmdir_sticky", cat(sDir("t", 0o1777), sDir("t/root", 0o777), myDir("t/mine")), sRmdir("t/root"), sRmdir("t/mine"))
	add("rmdir_emptied", cat(myDir("d"), myFile("d/f"), myDir("d/s")), sRmdir("d"), sUnlink("d/f"), sRmdir("d/s"), sRmdir("d"))
	add("rmdir_eloop", loop(), sRmdir("a/x"))
	add("rmdir_parent", cat(myDir("d"), myDir("d/e")), sStamp("d"), sRmdir("d/e"), sChanged("d"))

	// symlink
	add("symlink", nil, sSymlink("target", "l"), sSymlink("../x/y", "l2"), sSymlink("/abs/path", "l3"), sLstat("l"))
	add("symlink_long_target", nil, sSymlink(strings.Repeat("t", 1023), "l1"), sSymlink(strings.Repeat("u", 4095), "l2"), sSymlink(strings.Repeat("v", 4096), "l3"))
	add("symlink_eexist", cat(myFile("f"), myDir("d"), ss(sSymlink("x", "l"), sMkfifo("p", 0o644))),
		sSymlink("t", "f"), sSymlink("t", "d"), sSymlink("t", "l"), sSymlink("t", "p"))
	add("symlink_enoent", nil, sSymlink("t", "nodir/l"))
	add("symlink_enotdir", myFile("f"), sSymlink("t", "f/l"))
	add("symlink_nametoolong", nil, sSymlink("t", n255), sSymlink("t", n256), sSymlink(n256, "l"))
	add("symlink_eacces", sDir("d", 0o755), sSymlink("t", "d/l"))
	add("symlink_follow", cat(myDir("d"), myFile("d/f"), ss(sSymlink("d", "l"), sSymlink("l/f", "lf"))),
		sStat("l/f"), sReaddir("l"), sRead("lf"), sWrite("lf", oWR|oAppend, "+"))
	chain := []pjdStep{sSymlink("f", "l0")}
	for i := 1; i <= 41; i++ {
		chain = append(chain, sSymlink(fmt.Sprintf("l%d", i-1), fmt.Sprintf("l%d", i)))
	}
	add("symlink_chain", cat(myFile("f"), chain), sStat("l39"), sStat("l40"), sStat("l41"))
	add("symlink_parent", myDir("d"), sStamp("d"), sSymlink("t", "d/l"), sChanged("d"))

	// truncate
	sizes := []int64{5, 100, 0, 70000, 65536, 65537, 1<<20 + 3, 3, 2 << 20, 64 << 10}
	var tr []pjdStep
	for _, s := range sizes {
		tr = append(tr, sTruncate("f", s), sRead("f"))
	}
	add("truncate_sizes", myFile("f"), tr...)
	add("truncate_errors", cat(myDir("d"), ss(sMkfifo("p", 0o666)), myFile("f"), ss(sSymlink("f", "l")), loop()),
		sTruncate("d", 0), sTruncate("p", 0), sTruncate("nope", 0), sTruncate("f/x", 0), sTruncate(n256, 0),
		sTruncate("f", -1), sTruncate("a", 0), sTruncate("l", 2))
	add("truncate_eacces", cat(sFile("f", 0o644, "root"), sDir("s", 0o700), myFile("s/g")), sTruncate("f", 1), sTruncate("s/g", 1))
	add("truncate_kills_suid", cat(myFile("f"), ss(sChmod("f", 0o6755))), sTruncate("f", 2))
	add("truncate_owner_readonly", append(sFile("f", 0o444, "abc"), sMine("f")), sTruncate("f", 1))
	add("ftruncate", myFile("f"), sFtruncate("f", oRD, 1), sFtruncate("f", oWR, 2), sFtruncate("f", oRW, 100000))
	add("truncate_times", myFile("f"), sStamp("f"), sTruncate("f", 5), sChanged("f"), sStamp("f"), sTruncate("f", 1), sChanged("f"))

	// unlink
	add("unlink", cat(myFile("f"), ss(sSymlink("f", "l"), sMkfifo("p", 0o644))), sUnlink("l"), sStat("f"), sUnlink("p"), sUnlink("f"))
	add("unlink_hardlink", cat(myDir("d"), myFile("f"), ss(sLink("f", "d/g"))), sStamp("f"), sUnlink("d/g"), sChanged("f"))
	add("unlink_errors", cat(myDir("d"), myFile("f")), sUnlink("d"), sUnlink("nope"), sUnlink("f/x"), sUnlink(n256), sUnlink("nodir/x"))
	add("unlink_slash", cat(myFile("f"), myDir("d")), sUnlink("f/"), sUnlink("d/"), sRmdir("f/"), sRmdir("d/"))
	add("unlink_nametoolong", myFile(n255), sUnlink(n255))
	add("unlink_eacces", cat(sDir("r", 0o755), myFile("r/f"), sDir("s", 0o733), myFile("s/f")), sUnlink("r/f"), sUnlink("s/f"))
	add("unlink_sticky", cat(sDir("t", 0o1777), sFile("t/root", 0o666, ""), myFile("t/mine")), sUnlink("t/root"), sUnlink("t/mine"))
	add("unlink_sticky_owner", cat(myDir("t"), ss(sChmod("t", 0o1777)), sFile("t/root", 0o644, "")), sUnlink("t/root"))
	add("unlink_parent", cat(myDir("d"), myFile("d/f")), sStamp("d"), sUnlink("d/f"), sChanged("d"))

	// utimensat
	t1, t2 := ts(1_000_000_000, 123456789), ts(1_100_000_000, 987654321)
	set := func(p string) pjdStep {
		return sUtimens(p, ts(900_000_000, 1), ts(950_000_000, 2), unix.AT_SYMLINK_NOFOLLOW)
	}
	add("utimens_explicit", myFile("f"), sUtimens("f", t1, t2, 0))
	add("utimens_now", cat(myFile("f"), ss(set("f"))), sUtimens("f", tNow, tNow, 0))
	add("utimens_omit", cat(myFile("f"), ss(set("f"))), sStamp("f"), sUtimens("f", tOmit, tOmit, 0), sChanged("f"))
	add("utimens_omit_now", cat(myFile("f"), ss(set("f"))), sUtimens("f", tOmit, tNow, 0))
	add("utimens_now_omit", cat(myFile("f"), ss(set("f"))), sUtimens("f", tNow, tOmit, 0))
	add("utimens_set_omit", cat(myFile("f"), ss(set("f"))), sUtimens("f", t1, tOmit, 0))
	add("utimens_nofollow", cat(myFile("f"), ss(sSymlink("f", "l"), sMine("l"), set("f"), set("l"))), sUtimens("l", t1, t2, unix.AT_SYMLINK_NOFOLLOW))
	add("utimens_follow", cat(myFile("f"), ss(sSymlink("f", "l"), sMine("l"), set("f"))), sUtimens("l", t1, t2, 0))
	add("utimens_pre1970", myFile("f"), sUtimens("f", ts(-100, 5), ts(-1_000_000_000, 999999999), 0))
	add("utimens_far_future", myFile("f"), sUtimens("f", ts(4_102_444_800, 1), ts(1<<33, 0), 0))
	add("utimens_einval", myFile("f"), sUtimens("f", ts(1, 1_000_000_000), tOmit, 0), sUtimens("f", ts(1, -5), tOmit, 0))
	add("utimens_perm", cat(sFile("f", 0o644, ""), sFile("w", 0o666, ""), ss(set("f"), set("w"))),
		sUtimens("f", t1, t2, 0), sUtimens("f", tNow, tNow, 0), sUtimens("w", t1, t2, 0), sUtimens("w", tNow, tNow, 0), sUtimens("w", tOmit, tOmit, 0))
	add("utimens_errors", cat(myFile("f"), loop(), sDir("s", 0o700), myFile("s/f")),
		sUtimens("nope", t1, t2, 0), sUtimens("f/x", t1, t2, 0), sUtimens(n256, t1, t2, 0), sUtimens("a", t1, t2, 0), sUtimens("s/f", t1, t2, 0))
	add("utimens_dir_fifo", cat(myDir("d"), ss(sMkfifo("p", 0o644), sMine("p"))), sUtimens("d", t1, t2, 0), sUtimens("p", t2, t1, 0))
	add("utimens_ctime", cat(myFile("f"), ss(set("f"))), sStamp("f"), sUtimens("f", t1, t2, 0), sChanged("f"))

	// Descriptors held open across other calls (files removed while
	// open, attribute changes with writes still buffered).
	add("held_unlink", myFile("f"), sHolding("f", oRW, "XY", sUnlink("f"), sStat("f")))
	add("held_rename_over", cat(myFile("f"), sFile("g", 0o644, "other")), sHolding("g", oRD, "", sRename("f", "g")))
	add("held_rename_over_cross", cat(myDir("a"), myDir("b"), myFile("a/f"), myFile("b/g"), ss(sWrite("b/g", oWR|oAppend, " b"))),
		sHolding("b/g", oRD, "", sRename("a/f", "b/g"), sRead("b/g")))
	add("held_write_utimens", myFile("f"), sWriteHolding("f", oWR, "new data", sUtimens("f", t1, t2, 0)))
	add("held_utimens_write", myFile("f"), sHolding("f", oWR, "new data", sUtimens("f", t1, t2, 0)))
	add("held_write_chmod", myFile("f"), sWriteHolding("f", oWR, "data", sChmod("f", 0o600), sStat("f")))
	add("held_write_chown", myFile("f"), sWriteHolding("f", oWR, "data", sChown("f", -1, pjdSuppGroup)))
	add("held_write_truncate", myFile("f"), sWriteHolding("f", oRW, "0123456789", sTruncate("f", 3), sRead("f")))
	add("held_write_rename_cross", cat(myDir("a"), myFile("f")), sWriteHolding("f", oWR, "data", sRename("f", "a/g"), sRead("a/g")))
	add("held_write_link", cat(myDir("a"), myFile("f")), sWriteHolding("f", oWR, "data", sLink("f", "a/h"), sStat("a/h")))
	add("held_create_like_cp", myDir("a"), sHolding("a/n", oCreat|oExcl|oWR, "", sWrite("a/n", oWR, "content"), sChmod("a/n", 0o751), sUtimens("a/n", t1, t2, 0)))
	add("held_write_kills_suid", cat(myFile("f"), ss(sChmod("f", 0o6777))), sHolding("f", oWR, "x", sStat("f")))
	add("held_two_writers", myFile("f"), sHolding("f", oWR, "AB", sWrite("f", oWR|oAppend, "-appended"), sWrite("f", oWR, "z")))

	// Enough directories that pairs of them lie on different subvolumes.
	var dirs []pjdStep
	for i := range 6 {
		dirs = append(dirs, myDir(fmt.Sprintf("a%d", i))...)
	}
	chainSteps := func(mk func(i int) pjdStep) []pjdStep {
		var out []pjdStep
		for i := range 5 {
			out = append(out, mk(i))
		}
		return out
	}
	var eachFile, eachDir, eachSub []pjdStep
	for i := range 6 {
		eachFile = append(eachFile, sFile(fmt.Sprintf("a%d/f", i), 0o644, fmt.Sprintf("file %d", i))...)
		eachFile = append(eachFile, sMine(fmt.Sprintf("a%d/f", i)))
		eachDir = append(eachDir, myDir(fmt.Sprintf("a%d/d", i))...)
		eachSub = append(eachSub, myDir(fmt.Sprintf("a%d/d", i))...)
		eachSub = append(eachSub, myFile(fmt.Sprintf("a%d/d/x", i))...)
	}
	add("cross_rename_chain", cat(dirs, myFile("a0/g")), chainSteps(func(i int) pjdStep {
		return sRename(fmt.Sprintf("a%d/g", i), fmt.Sprintf("a%d/g", i+1))
	})...)
	add("cross_rename_over", cat(dirs, eachFile), chainSteps(func(i int) pjdStep {
		return sRename(fmt.Sprintf("a%d/f", i), fmt.Sprintf("a%d/f", i+1))
	})...)
	add("cross_rename_dir", cat(dirs, myDir("a0/m"), myFile("a0/m/x")), chainSteps(func(i int) pjdStep {
		return sRename(fmt.Sprintf("a%d/m", i), fmt.Sprintf("a%d/m", i+1))
	})...)
	add("cross_rename_dir_over_empty", cat(dirs, eachDir, myFile("a0/d/x")), chainSteps(func(i int) pjdStep {
		return sRename(fmt.Sprintf("a%d/d", i), fmt.Sprintf("a%d/d", i+1))
	})...)
	add("cross_rename_dir_notempty", cat(dirs, eachSub), chainSteps(func(i int) pjdStep {
		return sRename(fmt.Sprintf("a%d/d", i), fmt.Sprintf("a%d/d", i+1))
	})...)
	add("cross_rename_subdir_up", cat(dirs, eachSub), chainSteps(func(i int) pjdStep {
		return sRename(fmt.Sprintf("a%d/d", i+1), fmt.Sprintf("a%d/d/up", i))
	})...)
	add("cross_link", cat(dirs, myFile("a0/g")), append(chainSteps(func(i int) pjdStep {
		return sLink("a0/g", fmt.Sprintf("a%d/l", i+1))
	}), sUnlink("a0/g"), sUnlink("a3/l"))...)
	add("cross_rmdir", cat(dirs, eachSub), append(chainSteps(func(i int) pjdStep {
		return sRmdir(fmt.Sprintf("a%d/d", i))
	}), chainSteps(func(i int) pjdStep { return sUnlink(fmt.Sprintf("a%d/d/x", i)) })...)...)
	add("cross_rmdir_empty", cat(dirs, eachDir), append(chainSteps(func(i int) pjdStep {
		return sRmdir(fmt.Sprintf("a%d/d", i))
	}), chainSteps(func(i int) pjdStep { return sRmdir(fmt.Sprintf("a%d", i)) })...)...)
	add("cross_held_rename_over", cat(dirs, eachFile), chainSteps(func(i int) pjdStep {
		return sHolding(fmt.Sprintf("a%d/f", i+1), oRD, "", sRename(fmt.Sprintf("a%d/f", i), fmt.Sprintf("a%d/f", i+1)))
	})...)
	add("cross_exchange", cat(dirs, eachFile, eachSub[:len(eachSub)/2]), append(chainSteps(func(i int) pjdStep {
		return sRename2(fmt.Sprintf("a%d/f", i), fmt.Sprintf("a%d/f", i+1), unix.RENAME_EXCHANGE)
	}), sRename2("a0/d", "a5/f", unix.RENAME_EXCHANGE), sRename2("a1/d", "a4/f", unix.RENAME_EXCHANGE))...)
	add("cross_rename_hardlink_over", cat(dirs, myFile("a0/g")), append(chainSteps(func(i int) pjdStep {
		return sLink("a0/g", fmt.Sprintf("a%d/g", i+1))
	}), sRename("a0/g", "a5/g"), sRename("a1/g", "a2/g"), sRename("a3/g", "a4/g"))...)

	var stampAll, changedAll []pjdStep
	for i := range 6 {
		stampAll = append(stampAll, sStamp(fmt.Sprintf("a%d", i)))
		changedAll = append(changedAll, sChanged(fmt.Sprintf("a%d", i)))
	}
	add("cross_times_rename", cat(dirs, myFile("a0/g"), myDir("a0/m")), cat(stampAll, ss(sStamp("a0/g")), chainSteps(func(i int) pjdStep {
		return sRename(fmt.Sprintf("a%d/g", i), fmt.Sprintf("a%d/g", i+1))
	}), chainSteps(func(i int) pjdStep {
		return sRename(fmt.Sprintf("a%d/m", i), fmt.Sprintf("a%d/m", i+1))
	}), changedAll, ss(sChanged("a5/g")))...)
	add("cross_times_link_rmdir", cat(dirs, eachDir, myFile("g")), cat(stampAll, ss(sStamp("g")), chainSteps(func(i int) pjdStep {
		return sLink("g", fmt.Sprintf("a%d/l", i))
	}), changedAll, ss(sChanged("g")), stampAll, chainSteps(func(i int) pjdStep {
		return sRmdir(fmt.Sprintf("a%d/d", i))
	}), changedAll)...)
	add("others_write_kills_suid", sFile("f", 0o6777, "data"), sWrite("f", oWR, "x"))
	add("others_truncate_kills_suid", sFile("f", 0o6777, "data"), sTruncate("f", 1))
	add("others_write_kills_sgid_dir", cat(myDir("d"), ss(sLchown("d", 0, pjdSuppGroup), sChmod("d", 0o2777)), sFile("d/f", 0o2777, "")), sWrite("d/f", oWR, "x"))

	// mknod
	add("mknod_types", nil, sMknod("s", unix.S_IFSOCK|0o644, 0), sMknod("r", unix.S_IFREG|0o600, 0), sMknod("z", 0o640, 0),
		sMknod("c", unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))), sMknod("b", unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))))
	add("mknod_errors", cat(myFile("f")), sMknod("f", unix.S_IFSOCK|0o644, 0), sMknod("f/s", unix.S_IFSOCK|0o644, 0),
		sMknod(n256, unix.S_IFIFO|0o644, 0), sMknod("nodir/s", unix.S_IFSOCK|0o644, 0))

	// extended attributes
	add("xattr", myFile("f"), sSetxattr("f", "user.a", "1", 0), sGetxattr("f", "user.a", 64), sGetxattr("f", "user.b", 64),
		sSetxattr("f", "user.a", "22", unix.XATTR_CREATE), sSetxattr("f", "user.b", "x", unix.XATTR_REPLACE),
		sSetxattr("f", "user.a", "22", unix.XATTR_REPLACE), sGetxattr("f", "user.a", 0), sGetxattr("f", "user.a", 1),
		sSetxattr("f", "user.b", "", 0), sGetxattr("f", "user.b", 8), sListxattr("f"), sRemovexattr("f", "user.a"),
		sRemovexattr("f", "user.a"), sListxattr("f"))
	add("xattr_perm", cat(sFile("f", 0o644, ""), sFile("g", 0o600, ""), ss(sSetxattr("g", "user.x", "v", 0))),
		sSetxattr("f", "user.a", "1", 0), sGetxattr("g", "user.x", 64), sListxattr("g"), sRemovexattr("g", "user.x"))
	add("xattr_dir_symlink", cat(myDir("d"), ss(sSymlink("d", "l"), sMine("l"), sMkfifo("p", 0o644), sMine("p"))),
		sSetxattr("d", "user.a", "1", 0), sSetxattr("l", "user.a", "1", 0), sGetxattr("l", "user.a", 64),
		sSetxattr("p", "user.a", "1", 0), sListxattr("d"))
	add("xattr_trusted", myFile("f"), sSetxattr("f", "trusted.t", "1", 0), sGetxattr("f", "trusted.t", 64))
	add("xattr_names", myFile("f"), sSetxattr("f", "user."+strings.Repeat("n", 250), "v", 0),
		sSetxattr("f", "user."+strings.Repeat("n", 251), "v", 0), sSetxattr("f", "bogus.a", "v", 0), sGetxattr("f", "bogus.a", 8), sRemovexattr("f", "system.x"), sSetxattr("f", "user.", "v", 0), sSetxattr("f", "user.big", strings.Repeat("v", 3000), 0))
	add("xattr_follow_links", cat(myDir("a"), myFile("f"), ss(sSetxattr("f", "user.k", "kept", 0))),
		sLink("f", "a/g"), sRename("f", "a/h"), sGetxattr("a/g", "user.k", 64), sGetxattr("a/h", "user.k", 64))
	return cs
}
