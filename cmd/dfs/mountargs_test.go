package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseMount(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		helper  bool
		want    func(*mountArgs) // edits the defaults into the expectation
		wantErr string
	}{
		{name: "plain", args: []string{"h1:/gv0", "/mnt/x"}, want: func(a *mountArgs) {}},
		{name: "foreground", args: []string{"-f", "h1:/gv0", "/mnt/x"}, want: func(a *mountArgs) { a.foreground = true }},
		{name: "host list and port", args: []string{"h1,h2:24008:/gv0", "/mnt/x"}, want: func(a *mountArgs) {
			a.servers = []string{"h1:24007", "h2:24008"}
		}},
		{name: "options", args: []string{"-o", "ro,_netdev,defaults,backup-volfile-servers=h2:h3:7000,log-file=/tmp/l,log-level=debug,attribute-timeout=2.5,entry-timeout=0", "h1:/gv0", "/mnt/x"}, want: func(a *mountArgs) {
			a.readOnly = true
			a.servers = []string{"h1:24007", "h2:24007", "h3:7000"}
			a.logFile = "/tmp/l"
			a.logLevel = -4
			a.attrTimeout = 2500 * time.Millisecond
			a.entryTimeout = 0
		}},
		{name: "helper as mount(8) calls it", helper: true, args: []string{"h1:/gv0", "/mnt/x", "-o", "rw,_netdev"}, want: func(a *mountArgs) {}},
		{name: "helper ignores -s -n -v", helper: true, args: []string{"-s", "-n", "h1:/gv0", "-v", "/mnt/x"}, want: func(a *mountArgs) {}},
		{name: "helper fake mount refused", helper: true, args: []string{"-f", "h1:/gv0", "/mnt/x"}, wantErr: "fake"},
		{name: "no volume", args: []string{"h1:/", "/mnt/x"}, wantErr: "HOST[,HOST...]:/VOLUME"},
		{name: "no colon", args: []string{"h1", "/mnt/x"}, wantErr: "HOST[,HOST...]:/VOLUME"},
		{name: "nested volume path", args: []string{"h1:/a/b", "/mnt/x"}, wantErr: "HOST[,HOST...]:/VOLUME"},
		{name: "missing dir", args: []string{"h1:/gv0"}, wantErr: "mount point"},
		{name: "unknown option", args: []string{"-o", "bogus", "h1:/gv0", "/mnt/x"}, wantErr: "unknown mount option 'bogus'"},
		{name: "bad timeout", args: []string{"-o", "entry-timeout=-1", "h1:/gv0", "/mnt/x"}, wantErr: "entry-timeout"},
		{name: "bad level", args: []string{"-o", "log-level=LOUD", "h1:/gv0", "/mnt/x"}, wantErr: "log-level"},
		{name: "debug address", args: []string{"-o", "debug-addr=127.0.0.1:6060", "h1:/gv0", "/mnt/x"}, want: func(a *mountArgs) {
			a.debugAddr = "127.0.0.1:6060"
		}},
		{name: "debug address without host", args: []string{"-o", "debug-addr=:6060", "h1:/gv0", "/mnt/x"}, wantErr: "debug-addr must be HOST:PORT"},
		{name: "debug address without port", args: []string{"-o", "debug-addr=localhost", "h1:/gv0", "/mnt/x"}, wantErr: "debug-addr must be HOST:PORT"},
		{name: "debug address bad port", args: []string{"-o", "debug-addr=localhost:http", "h1:/gv0", "/mnt/x"}, wantErr: "debug-addr must be HOST:PORT"},
		{name: "read-ahead", args: []string{"-o", "read-ahead-kb=4096", "h1:/gv0", "/mnt/x"}, want: func(a *mountArgs) {
			a.readAheadKB = 4096
		}},
		{name: "kernel read-ahead", args: []string{"-o", "read-ahead-kb=0", "h1:/gv0", "/mnt/x"}, want: func(a *mountArgs) {
			a.readAheadKB = -1
		}},
		{name: "bad read-ahead", args: []string{"-o", "read-ahead-kb=lots", "h1:/gv0", "/mnt/x"}, wantErr: "read-ahead-kb must be"},
		{name: "unknown flag", args: []string{"-x", "h1:/gv0", "/mnt/x"}, wantErr: "unknown option '-x'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMount(tc.args, tc.helper)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseMount(%q) error %v, want one containing %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseMount(%q): %v", tc.args, err)
			}
			want := mountArgs{servers: []string{"h1:24007"}, volume: "gv0", dir: "/mnt/x", logLevel: 0, attrTimeout: time.Second, entryTimeout: time.Second}
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("parseMount(%q)\n got %+v\nwant %+v", tc.args, got, want)
			}
		})
	}
}

// The daemon's arguments parse back to the same mount.
func TestMountArgvRoundTrip(t *testing.T) {
	a, err := parseMount([]string{"-o", "ro,backup-volfile-servers=h2:h3,attribute-timeout=3,read-ahead-kb=0,debug-addr=[::1]:6060", "h1:7000:/gv0", "/mnt/x"}, false)
	if err != nil {
		t.Fatal(err)
	}
	argv := a.argv()
	if argv[0] != "mount" {
		t.Fatalf("argv %q", argv)
	}
	b, err := parseMount(argv[1:], false)
	if err != nil {
		t.Fatalf("parse %q: %v", argv, err)
	}
	a.foreground = true
	if !reflect.DeepEqual(a, b) {
		t.Errorf("round trip\n got %+v\nwant %+v", b, a)
	}
	if got := a.source(); got != "h1:7000:/gv0" {
		t.Errorf("source %q", got)
	}
}

func TestDevLayout(t *testing.T) {
	for _, tc := range []struct{ n, replica, bricks int }{{1, 0, 1}, {2, 2, 2}, {3, 3, 3}, {4, 3, 3}, {6, 3, 6}, {8, 3, 6}, {9, 3, 9}} {
		r, b := devLayout(tc.n)
		if r != tc.replica || b != tc.bricks {
			t.Errorf("devLayout(%d) = %d, %d; want %d, %d", tc.n, r, b, tc.replica, tc.bricks)
		}
	}
}
