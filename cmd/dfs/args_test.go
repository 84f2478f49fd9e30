package main

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/proto/dfspb"
)

func words(line string) []string { return strings.Fields(line) }

// wantUsage checks that err is a usage error whose message contains want.
func wantUsage(t *testing.T, line string, err error, want string) {
	t.Helper()
	var u *usageError
	if !errors.As(err, &u) {
		t.Fatalf("%q: error %v, want a usage error containing %q", line, err, want)
	}
	if !strings.Contains(u.msg, want) {
		t.Fatalf("%q: error %q, want it to contain %q", line, u.msg, want)
	}
}

func bricks(specs ...string) []*dfspb.BrickSpec {
	var out []*dfspb.BrickSpec
	for _, s := range specs {
		host, path, _ := strings.Cut(s, ":/")
		out = append(out, &dfspb.BrickSpec{Host: host, Path: "/" + path})
	}
	return out
}

func TestParseGlobal(t *testing.T) {
	noEnv := func(string) string { return "" }
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "DFS_SERVER" {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		line    string
		getenv  func(string) string
		server  string
		json    bool
		timeout time.Duration
		help    bool
		rest    string
	}{
		{line: "volume list", getenv: noEnv, server: "127.0.0.1:24007", timeout: 30 * time.Second, rest: "volume list"},
		{line: "--server h1 peer status", getenv: noEnv, server: "h1:24007", timeout: 30 * time.Second, rest: "peer status"},
		{line: "--server=h1:7000 --json volume info", getenv: noEnv, server: "h1:7000", json: true, timeout: 30 * time.Second, rest: "volume info"},
		{line: "-server 10.0.0.5 -timeout 2m pool list", getenv: noEnv, server: "10.0.0.5:24007", timeout: 2 * time.Minute, rest: "pool list"},
		{line: "--server ::1 volume list", getenv: noEnv, server: "[::1]:24007", timeout: 30 * time.Second, rest: "volume list"},
		{line: "--server [::1]:7 volume list", getenv: noEnv, server: "[::1]:7", timeout: 30 * time.Second, rest: "volume list"},
		{line: "volume list", getenv: env("envhost"), server: "envhost:24007", timeout: 30 * time.Second, rest: "volume list"},
		{line: "volume list", getenv: env("envhost:9"), server: "envhost:9", timeout: 30 * time.Second, rest: "volume list"},
		{line: "--server flag:1 volume list", getenv: env("envhost"), server: "flag:1", timeout: 30 * time.Second, rest: "volume list"},
		{line: "--help", getenv: noEnv, server: "127.0.0.1:24007", timeout: 30 * time.Second, help: true},
		{line: "-h volume", getenv: noEnv, server: "127.0.0.1:24007", timeout: 30 * time.Second, help: true, rest: "volume"},
		{line: "-- --json", getenv: noEnv, server: "127.0.0.1:24007", timeout: 30 * time.Second, rest: "--json"},
		// Flags after the command are the command's.
		{line: "volume stop gv0 --yes", getenv: noEnv, server: "127.0.0.1:24007", timeout: 30 * time.Second, rest: "volume stop gv0 --yes"},
	}
	for _, tt := range tests {
		o, rest, err := parseGlobal(words(tt.line), tt.getenv)
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		if o.server != tt.server || o.json != tt.json || o.timeout != tt.timeout || o.help != tt.help || strings.Join(rest, " ") != tt.rest {
			t.Errorf("%q: got %+v rest %q, want server %s json %v timeout %v help %v rest %q", tt.line, o, rest, tt.server, tt.json, tt.timeout, tt.help, tt.rest)
		}
	}

	bad := []struct {
		line   string
		getenv func(string) string
		want   string
	}{
		{"--server", noEnv, "--server needs a value"},
		{"--timeout soon volume list", noEnv, "--timeout must be a positive duration"},
		{"--timeout -1s volume list", noEnv, "--timeout must be a positive duration"},
		{"--json=yes volume list", noEnv, "--json takes no value"},
		{"--verbose volume list", noEnv, "unknown option '--verbose'"},
		{"--server h1:x volume list", noEnv, "--server: 'h1:x': port must be a number"},
		{"--server h1:0 volume list", noEnv, "port must be a number from 1 to 65535"},
		{"--server :24007 volume list", noEnv, "has no host"},
		{"--server a:b:c volume list", noEnv, "is not HOST[:PORT]"},
		{"volume list", env("bad host"), "DFS_SERVER: 'bad host' is not HOST[:PORT]"},
	}
	for _, tt := range bad {
		_, _, err := parseGlobal(words(tt.line), tt.getenv)
		wantUsage(t, tt.line, err, tt.want)
	}
}

func TestHostPort(t *testing.T) {
	tests := []struct{ in, want string }{
		{"h1", "h1:24007"},
		{"h1:24008", "h1:24008"},
		{"10.1.2.3", "10.1.2.3:24007"},
		{"10.1.2.3:1", "10.1.2.3:1"},
		{"fe80::1", "[fe80::1]:24007"},
		{"[fe80::1]", "[fe80::1]:24007"},
		{"[fe80::1]:5", "[fe80::1]:5"},
		{"server-1.example.com", "server-1.example.com:24007"},
	}
	for _, tt := range tests {
		got, err := hostPort(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("hostPort(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "h1:", "h1:99999", "[::1", "h/1", "a:b:c"} {
		if got, err := hostPort(in); err == nil {
			t.Errorf("hostPort(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseBrick(t *testing.T) {
	tests := []struct{ in, host, path string }{
		{"h1:/data/b1", "h1", "/data/b1"},
		{"10.0.0.1:/data/b1", "10.0.0.1", "/data/b1"},
		{"h1:24008:/data/b1", "h1:24008", "/data/b1"},
		{"127.0.0.2:24008:/b", "127.0.0.2:24008", "/b"},
		{"[::1]:/b", "::1", "/b"},
		{"fd00::1:/b", "fd00::1", "/b"},
		{"[fd00::1]:24008:/b", "[fd00::1]:24008", "/b"},
		{"h1:/data/odd:/name", "h1", "/data/odd:/name"},
		{"h1:/", "h1", "/"},
	}
	for _, tt := range tests {
		b, err := parseBrick(tt.in)
		if err != nil || b.GetHost() != tt.host || b.GetPath() != tt.path {
			t.Errorf("parseBrick(%q) = %v, %v; want %s %s", tt.in, b, err, tt.host, tt.path)
		}
	}
	for _, in := range []string{"foo", "h1:data/b1", ":/data", "h1/x:/data", "/data/b1", "h1:"} {
		_, err := parseBrick(in)
		wantUsage(t, in, err, "brick '"+in+"' is not HOST:/PATH")
	}
}

func TestParseVolumeCreate(t *testing.T) {
	tests := []struct {
		line string
		want *dfspb.VolumeCreateRequest
		yes  bool
	}{
		{"gv0 h1:/b1", &dfspb.VolumeCreateRequest{Name: "gv0", Bricks: bricks("h1:/b1")}, false},
		{"gv0 replica 3 h1:/b h2:/b h3:/b", &dfspb.VolumeCreateRequest{Name: "gv0", Replica: 3, Bricks: bricks("h1:/b", "h2:/b", "h3:/b")}, false},
		{"gv0 replica 2 h1:/b h1:/c force", &dfspb.VolumeCreateRequest{Name: "gv0", Replica: 2, Force: true, Bricks: bricks("h1:/b", "h1:/c")}, false},
		{"gv0 disperse 6 redundancy 2 h1:/a h2:/a h3:/a h4:/a h5:/a h6:/a", &dfspb.VolumeCreateRequest{Name: "gv0", Disperse: 6, Redundancy: 2, Bricks: bricks("h1:/a", "h2:/a", "h3:/a", "h4:/a", "h5:/a", "h6:/a")}, false},
		{"gv0 disperse h1:/a h2:/a h3:/a", &dfspb.VolumeCreateRequest{Name: "gv0", Bricks: bricks("h1:/a", "h2:/a", "h3:/a")}, false},
		{"gv0 disperse redundancy 1 h1:/a h2:/a h3:/a", &dfspb.VolumeCreateRequest{Name: "gv0", Redundancy: 1, Bricks: bricks("h1:/a", "h2:/a", "h3:/a")}, false},
		{"gv0 redundancy 1 disperse 3 h1:/a h2:/a h3:/a", &dfspb.VolumeCreateRequest{Name: "gv0", Disperse: 3, Redundancy: 1, Bricks: bricks("h1:/a", "h2:/a", "h3:/a")}, false},
		{"gv0 replica 3 transport tcp h1:/b h2:/b h3:/b", &dfspb.VolumeCreateRequest{Name: "gv0", Replica: 3, Bricks: bricks("h1:/b", "h2:/b", "h3:/b")}, false},
		{"gv0 h1:24008:/b 10.0.0.2:/b", &dfspb.VolumeCreateRequest{Name: "gv0", Bricks: bricks("h1:24008:/b", "10.0.0.2:/b")}, false},
		{"gv0 h1:/b --partitions 64", &dfspb.VolumeCreateRequest{Name: "gv0", Partitions: 64, Bricks: bricks("h1:/b")}, false},
		{"--partitions=8 gv0 h1:/b force --yes", &dfspb.VolumeCreateRequest{Name: "gv0", Partitions: 8, Force: true, Bricks: bricks("h1:/b")}, true},
		// Counts the server refuses are still grammar.
		{"gv0 replica 1 h1:/b", &dfspb.VolumeCreateRequest{Name: "gv0", Replica: 1, Bricks: bricks("h1:/b")}, false},
		{"gv0 replica 3 disperse 3 h1:/b", &dfspb.VolumeCreateRequest{Name: "gv0", Replica: 3, Disperse: 3, Bricks: bricks("h1:/b")}, false},
	}
	for _, tt := range tests {
		got, err := parseVolumeCreate(words(tt.line))
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		if !proto.Equal(got.req, tt.want) || got.yes != tt.yes {
			t.Errorf("%q:\n got %v yes=%v\nwant %v yes=%v", tt.line, got.req, got.yes, tt.want, tt.yes)
		}
	}

	bad := []struct{ line, want string }{
		{"", "volume name missing"},
		{"h1:/b1 h2:/b2", "volume name missing: 'h1:/b1' is a brick"},
		{"gv0", "no bricks given"},
		{"gv0 replica", "replica count missing"},
		{"gv0 replica 3", "no bricks given"},
		{"gv0 force", "no bricks given"},
		{"gv0 replica three h1:/b", "replica count must be a number, not 'three'"},
		{"gv0 replica -1 h1:/b", "unknown option '-1'"},
		{"gv0 replica 0 h1:/b", "replica count must be at least 1"},
		{"gv0 replica 99999999999 h1:/b", "replica count must be a number"},
		{"gv0 replica 3 replica 3 h1:/b", "replica given twice"},
		{"gv0 disperse 3 disperse 3 h1:/b", "disperse given twice"},
		{"gv0 disperse x h1:/b", "disperse count must be a number, not 'x'"},
		{"gv0 disperse 0 h1:/b", "disperse count must be at least 1"},
		{"gv0 redundancy h1:/b", "redundancy count must be a number, not 'h1:/b'"},
		{"gv0 redundancy 1 redundancy 2 h1:/b", "redundancy given twice"},
		{"gv0 replica 3 force h1:/b", "force must be the last argument"},
		{"gv0 replica force h1:/b", "replica count missing"},
		{"gv0 h1:/b force h2:/b", "force must be the last argument"},
		{"gv0 force h1:/b", "force must be the last argument"},
		{"gv0 h1:/b replica 3", "'replica' must come before the bricks"},
		{"gv0 h1:/b foo", "brick 'foo' is not HOST:/PATH"},
		{"gv0 h1:data", "brick 'h1:data' is not HOST:/PATH"},
		{"gv0 stripe 2 h1:/b", "stripe volumes are not supported"},
		{"gv0 replica 3 arbiter 1 h1:/b", "arbiter bricks are not supported"},
		{"gv0 disperse-data 4 h1:/b", "disperse-data is not supported"},
		{"gv0 transport rdma h1:/b", "transport 'rdma' is not supported"},
		{"gv0 transport", "transport missing"},
		{"gv0 h1:/b --partitions", "--partitions needs a value"},
		{"gv0 h1:/b --partitions many", "--partitions must be a number, not 'many'"},
		{"gv0 h1:/b --partitions 0", "--partitions must be at least 1"},
		{"gv0 h1:/b --partitions 1 --partitions 2", "--partitions given twice"},
		{"gv0 h1:/b --yes=no", "--yes takes no value"},
		{"gv0 h1:/b --force", "unknown option '--force'"},
	}
	for _, tt := range bad {
		_, err := parseVolumeCreate(words(tt.line))
		wantUsage(t, tt.line, err, tt.want)
	}
}

func TestParseVolumeCommands(t *testing.T) {
	type parser func([]string) (proto.Message, error)
	wrap := func(f any) parser {
		switch f := f.(type) {
		case func([]string) (*dfspb.VolumeStartRequest, error):
			return func(a []string) (proto.Message, error) { return f(a) }
		case func([]string) (*dfspb.VolumeInfoRequest, error):
			return func(a []string) (proto.Message, error) { return f(a) }
		case func([]string) (*dfspb.VolumeStatusRequest, error):
			return func(a []string) (proto.Message, error) { return f(a) }
		case func([]string) (*dfspb.VolumeSetRequest, error):
			return func(a []string) (proto.Message, error) { return f(a) }
		case func([]string) (*dfspb.VolumeGetRequest, error):
			return func(a []string) (proto.Message, error) { return f(a) }
		case func([]string) (*dfspb.VolumeResetRequest, error):
			return func(a []string) (proto.Message, error) { return f(a) }
		case func([]string) (*dfspb.PeerProbeRequest, error):
			return func(a []string) (proto.Message, error) { return f(a) }
		case func([]string) (*dfspb.PeerDetachRequest, error):
			return func(a []string) (proto.Message, error) { return f(a) }
		case func([]string) (stopArgs, error):
			return func(a []string) (proto.Message, error) {
				s, err := f(a)
				if err != nil {
					return nil, err
				}
				if s.yes {
					// Encode --yes in the name so one table checks it.
					s.req.Name += "+yes"
				}
				return s.req, nil
			}
		case func([]string) (deleteArgs, error):
			return func(a []string) (proto.Message, error) {
				d, err := f(a)
				if err != nil {
					return nil, err
				}
				if d.yes {
					d.req.Name += "+yes"
				}
				return d.req, nil
			}
		}
		panic("unknown parser")
	}
	start, stop, del := wrap(parseVolumeStart), wrap(parseVolumeStop), wrap(parseVolumeDelete)
	info, status := wrap(parseVolumeInfo), wrap(parseVolumeStatus)
	set, get, reset := wrap(parseVolumeSet), wrap(parseVolumeGet), wrap(parseVolumeReset)
	probe, detach := wrap(parsePeerProbe), wrap(parsePeerDetach)

	good := []struct {
		name  string
		parse parser
		line  string
		want  proto.Message
	}{
		{"start", start, "gv0", &dfspb.VolumeStartRequest{Name: "gv0"}},
		{"start", start, "gv0 force", &dfspb.VolumeStartRequest{Name: "gv0", Force: true}},
		{"stop", stop, "gv0", &dfspb.VolumeStopRequest{Name: "gv0"}},
		{"stop", stop, "gv0 force --yes", &dfspb.VolumeStopRequest{Name: "gv0+yes", Force: true}},
		{"stop", stop, "--yes gv0", &dfspb.VolumeStopRequest{Name: "gv0+yes"}},
		{"delete", del, "gv0", &dfspb.VolumeDeleteRequest{Name: "gv0"}},
		{"delete", del, "gv0 -yes", &dfspb.VolumeDeleteRequest{Name: "gv0+yes"}},
		{"info", info, "", &dfspb.VolumeInfoRequest{}},
		{"info", info, "all", &dfspb.VolumeInfoRequest{}},
		{"info", info, "gv0", &dfspb.VolumeInfoRequest{Name: "gv0"}},
		{"status", status, "", &dfspb.VolumeStatusRequest{}},
		{"status", status, "all", &dfspb.VolumeStatusRequest{}},
		{"status", status, "detail", &dfspb.VolumeStatusRequest{Detail: true}},
		{"status", status, "all detail", &dfspb.VolumeStatusRequest{Detail: true}},
		{"status", status, "gv0", &dfspb.VolumeStatusRequest{Name: "gv0"}},
		{"status", status, "gv0 detail", &dfspb.VolumeStatusRequest{Name: "gv0", Detail: true}},
		{"set", set, "gv0 network.ping-timeout 10", &dfspb.VolumeSetRequest{Name: "gv0", Key: "network.ping-timeout", Value: "10"}},
		{"get", get, "gv0 all", &dfspb.VolumeGetRequest{Name: "gv0", Key: "all"}},
		{"get", get, "gv0 auth.allow", &dfspb.VolumeGetRequest{Name: "gv0", Key: "auth.allow"}},
		{"reset", reset, "gv0", &dfspb.VolumeResetRequest{Name: "gv0"}},
		{"reset", reset, "gv0 all", &dfspb.VolumeResetRequest{Name: "gv0"}},
		{"reset", reset, "gv0 auth.allow", &dfspb.VolumeResetRequest{Name: "gv0", Key: "auth.allow"}},
		{"probe", probe, "h2", &dfspb.PeerProbeRequest{Address: "h2:24007"}},
		{"probe", probe, "10.0.0.2:7000", &dfspb.PeerProbeRequest{Address: "10.0.0.2:7000"}},
		{"detach", detach, "h2", &dfspb.PeerDetachRequest{Address: "h2:24007"}},
		{"detach", detach, "h2:1 force", &dfspb.PeerDetachRequest{Address: "h2:1", Force: true}},
	}
	for _, tt := range good {
		got, err := tt.parse(words(tt.line))
		if err != nil || !proto.Equal(got, tt.want) {
			t.Errorf("%s %q = %v, %v; want %v", tt.name, tt.line, got, err, tt.want)
		}
	}

	bad := []struct {
		name  string
		parse parser
		line  string
		want  string
	}{
		{"start", start, "", "volume name missing"},
		{"start", start, "gv0 now", "unexpected argument 'now'; only 'force' may follow the volume name"},
		{"start", start, "gv0 force force", "too many arguments"},
		{"start", start, "gv0 --yes", "unexpected argument '--yes'"},
		{"stop", stop, "", "volume name missing"},
		{"stop", stop, "gv0 now", "unexpected argument 'now'"},
		{"stop", stop, "gv0 force extra", "too many arguments"},
		{"delete", del, "", "volume name missing"},
		{"delete", del, "gv0 force", "unexpected argument 'force'"},
		{"info", info, "gv0 gv1", "too many arguments"},
		{"status", status, "gv0 gv1", "unexpected argument 'gv1'; only 'detail' may follow"},
		{"status", status, "gv0 detail detail", "unexpected argument 'detail'"},
		{"set", set, "", "volume name missing"},
		{"set", set, "gv0", "option key missing"},
		{"set", set, "gv0 auth.allow", "value of option auth.allow missing"},
		{"set", set, "gv0 a b c", "too many arguments"},
		{"get", get, "", "volume name missing"},
		{"get", get, "gv0", "option key missing"},
		{"get", get, "gv0 a b", "too many arguments"},
		{"reset", reset, "", "volume name missing"},
		{"reset", reset, "gv0 a b", "too many arguments"},
		{"probe", probe, "", "host missing"},
		{"probe", probe, "h1 h2", "too many arguments"},
		{"probe", probe, "h1:x", "port must be a number"},
		{"detach", detach, "", "host missing"},
		{"detach", detach, "h1 now", "only 'force' may follow the host"},
	}
	for _, tt := range bad {
		_, err := tt.parse(words(tt.line))
		wantUsage(t, tt.name+" "+tt.line, err, tt.want)
	}
}

func TestParseNoArgs(t *testing.T) {
	if err := parseNoArgs(nil); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, "status x", parseNoArgs([]string{"x"}), "unexpected argument 'x'")
}

func TestParseServer(t *testing.T) {
	tests := []struct {
		line string
		want serverArgs
	}{
		{"", serverArgs{listen: "node1:24007", level: slog.LevelInfo}},
		{"--listen 127.0.0.2", serverArgs{listen: "127.0.0.2:24007", level: slog.LevelInfo}},
		{"--listen=127.0.0.2:7000 --data /tmp/d --voters 1 --log-level debug", serverArgs{listen: "127.0.0.2:7000", data: "/tmp/d", voters: 1, level: slog.LevelDebug}},
		{"--log-level WARN", serverArgs{listen: "node1:24007", level: slog.LevelWarn}},
		{"--log-level error", serverArgs{listen: "node1:24007", level: slog.LevelError}},
	}
	for _, tt := range tests {
		got, err := parseServer(words(tt.line), "node1")
		if err != nil || got != tt.want {
			t.Errorf("%q = %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
	}
	bad := []struct{ line, want string }{
		{"--voters 0", "--voters must be a number from 1 to 5, not '0'"},
		{"--voters 6", "--voters must be a number from 1 to 5"},
		{"--voters x", "--voters must be a number from 1 to 5"},
		{"--log-level loud", "--log-level must be debug, info, warn or error"},
		{"--listen h:x", "--listen: 'h:x': port must be a number"},
		{"--listen", "--listen needs a value"},
		{"--data=", "--data must name a directory"},
		{"extra", "unexpected argument 'extra'"},
		{"--port 1", "unknown option '--port'"},
	}
	for _, tt := range bad {
		_, err := parseServer(words(tt.line), "node1")
		wantUsage(t, tt.line, err, tt.want)
	}
	_, err := parseServer(nil, "")
	wantUsage(t, "no hostname", err, "give --listen HOST:PORT")
	if got, err := parseServer(words("--listen h9"), ""); err != nil || got.listen != "h9:24007" {
		t.Errorf("--listen without a hostname: %+v, %v", got, err)
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		line, cmd, rest, group string
	}{
		{"volume create gv0 h:/b", "volume create", "gv0 h:/b", ""},
		{"peer status", "peer status", "", ""},
		{"pool list", "pool list", "", ""},
		{"server --listen h", "server", "--listen h", ""},
		{"volume", "", "", "volume"},
		{"volume frob", "", "", "volume"},
		{"peer", "", "", "peer"},
		{"frob", "", "", ""},
	}
	for _, tt := range tests {
		cmd, rest, group := lookup(words(tt.line))
		name := ""
		if cmd != nil {
			name = cmd.name
		}
		if name != tt.cmd || strings.Join(rest, " ") != tt.rest || group != tt.group {
			t.Errorf("lookup(%q) = %q %q %q; want %q %q %q", tt.line, name, rest, group, tt.cmd, tt.rest, tt.group)
		}
	}
}

func TestCommonFlags(t *testing.T) {
	tests := []struct {
		line, rest string
		help, json bool
	}{
		{"gv0", "gv0", false, false},
		{"gv0 --json", "gv0", false, true},
		{"-json gv0 detail", "gv0 detail", false, true},
		{"gv0 -h", "gv0", true, false},
		{"--help", "", true, false},
		{"gv0 -- --json", "gv0 -- --json", false, false},
	}
	for _, tt := range tests {
		rest, help, json := commonFlags(words(tt.line))
		if strings.Join(rest, " ") != tt.rest || help != tt.help || json != tt.json {
			t.Errorf("commonFlags(%q) = %q %v %v; want %q %v %v", tt.line, rest, help, json, tt.rest, tt.help, tt.json)
		}
	}
}
