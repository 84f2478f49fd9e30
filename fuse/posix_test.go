package fuse_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// notYet lists the posixtest cases that need features of a later issue.
var notYet = map[string]string{
	"FcntlFlockLocksFile": "flock/fcntl locks are not implemented yet",
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
