package fuse_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// notYet lists the posixtest cases that dfs does not pass, and why.
var notYet = map[string]string{
	// The case locks through one descriptor and expects a second open of
	// the file in the same process to be refused: the per-open-file (OFD)
	// semantics that go-fuse's loopback gets from F_OFD_SETLK. POSIX
	// record locks belong to the process, so dfs grants it, as ext4 and
	// NFS do (TestFcntlLocksAcrossMounts checks both).
	"FcntlFlockLocksFile": "expects OFD lock semantics; dfs implements POSIX per-process locks",
}

// TestPosix runs go-fuse's posixtest suite against the mount, each case in
// a fresh directory.
func TestPosix(t *testing.T) {
	e := mountEnv(t)
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if why, ok := notYet[name]; ok {
				t.Skip(why)
			}
			dir := filepath.Join(e.mnt, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			posixtest.All[name](t, dir)
		})
	}
}
