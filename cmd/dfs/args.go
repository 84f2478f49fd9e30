package main

// The argument grammar of every command, as pure functions: words in,
// requests or errors out, no I/O. The server re-validates everything that
// is not grammar (counts, names, paths, pool membership).

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/dfsproject/dfs/proto/dfspb"
	"github.com/dfsproject/dfs/volume"
)

// defaultPort is the port of a dfs server when an address gives none,
// Gluster's glusterd port.
const defaultPort = "24007"

// usageError is a command line that does not follow the grammar; main
// prints it with the command's usage and exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// globalOptions are the flags before the command.
type globalOptions struct {
	server  string        // host:port of the server to ask
	json    bool          // print responses as JSON
	timeout time.Duration // deadline of every RPC
	help    bool          // --help before any command
}

// parseGlobal reads the global flags up to the first word that is not one
// and returns the rest. getenv supplies DFS_SERVER.
func parseGlobal(args []string, getenv func(string) string) (globalOptions, []string, error) {
	o := globalOptions{server: "127.0.0.1:" + defaultPort, timeout: 30 * time.Second}
	serverFrom := "" // where o.server came from, for errors
	if env := getenv("DFS_SERVER"); env != "" {
		o.server, serverFrom = env, "DFS_SERVER"
	}
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-" {
		arg := args[0]
		args = args[1:]
		if arg == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		switch name {
		case "server", "timeout":
			if !hasValue {
				if len(args) == 0 {
					return o, nil, usagef("--%s needs a value", name)
				}
				value, args = args[0], args[1:]
			}
			if name == "server" {
				o.server, serverFrom = value, "--server"
				continue
			}
			d, err := time.ParseDuration(value)
			if err != nil || d <= 0 {
				return o, nil, usagef("--timeout must be a positive duration such as 30s or 2m, not '%s'", value)
			}
			o.timeout = d
		case "json", "help", "h":
			if hasValue {
				return o, nil, usagef("--%s takes no value", name)
			}
			if name == "json" {
				o.json = true
			} else {
				o.help = true
			}
		default:
			return o, nil, usagef("unknown option '%s'", arg)
		}
	}
	addr, err := hostPort(o.server)
	if err != nil {
		if serverFrom == "" {
			serverFrom = "server"
		}
		return o, nil, usagef("%s: %v", serverFrom, err)
	}
	o.server = addr
	return o, args, nil
}

// hostPort returns addr as host:port, adding defaultPort when it has none.
// IPv6 addresses take brackets when they carry a port: [::1]:24007.
func hostPort(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("address is empty")
	}
	if strings.ContainsAny(addr, " \t/") {
		return "", fmt.Errorf("'%s' is not HOST[:PORT]", addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// No port, or an IPv6 literal with or without brackets.
		host, port = addr, defaultPort
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
		}
		if strings.ContainsAny(host, "[]") || strings.Contains(host, ":") && net.ParseIP(host) == nil {
			return "", fmt.Errorf("'%s' is not HOST[:PORT]", addr)
		}
	}
	if host == "" {
		return "", fmt.Errorf("'%s' has no host", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("'%s': port must be a number from 1 to 65535", addr)
	}
	return net.JoinHostPort(host, port), nil
}

// commonFlags takes the options every command accepts anywhere before
// "--" out of its arguments: --help (-h) and --json, which Gluster users
// write last and which means the same as before the command.
func commonFlags(args []string) (rest []string, help, json bool) {
	for i, a := range args {
		switch a {
		case "--":
			return append(rest, args[i:]...), help, json
		case "--help", "-help", "-h":
			help = true
		case "--json", "-json":
			json = true
		default:
			rest = append(rest, a)
		}
	}
	return rest, help, json
}

// flagKind tells whether a command's dashed option takes a value.
type flagKind int

const (
	boolFlag flagKind = iota
	valueFlag
)

// splitFlags separates a command's dashed options (--name, --name=value,
// --name value; one dash works too) from its words. "--" ends the options.
func splitFlags(args []string, spec map[string]flagKind) (map[string]string, []string, error) {
	flags := map[string]string{}
	var words []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(words, args[i+1:]...), nil
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			words = append(words, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		kind, ok := spec[name]
		switch {
		case !ok:
			return nil, nil, usagef("unknown option '%s'", a)
		case kind == boolFlag && hasValue:
			return nil, nil, usagef("--%s takes no value", name)
		case kind == boolFlag:
			value = "true"
		case !hasValue && i+1 == len(args):
			return nil, nil, usagef("--%s needs a value", name)
		case !hasValue:
			i++
			value = args[i]
		}
		if _, dup := flags[name]; dup {
			return nil, nil, usagef("--%s given twice", name)
		}
		flags[name] = value
	}
	return flags, words, nil
}

// serverArgs is `dfs server` after parsing. Empty or zero fields take the
// server's defaults.
type serverArgs struct {
	listen string
	data   string
	voters int
	level  slog.Level
}

// parseServer parses `dfs server` options; hostname is this machine's name,
// the host of the default --listen address.
func parseServer(args []string, hostname string) (serverArgs, error) {
	a := serverArgs{level: slog.LevelInfo}
	flags, words, err := splitFlags(args, map[string]flagKind{"listen": valueFlag, "data": valueFlag, "voters": valueFlag, "log-level": valueFlag})
	if err != nil {
		return a, err
	}
	if len(words) > 0 {
		return a, usagef("unexpected argument '%s'", words[0])
	}
	listen, ok := flags["listen"]
	if !ok {
		if hostname == "" {
			return a, usagef("cannot tell this machine's host name; give --listen HOST:PORT")
		}
		listen = hostname
	}
	if a.listen, err = hostPort(listen); err != nil {
		return a, usagef("--listen: %v", err)
	}
	if d, ok := flags["data"]; ok {
		if d == "" {
			return a, usagef("--data must name a directory")
		}
		a.data = d
	}
	if v, ok := flags["voters"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > volume.MaxVoters {
			return a, usagef("--voters must be a number from 1 to %d, not '%s'", volume.MaxVoters, v)
		}
		a.voters = n
	}
	if l, ok := flags["log-level"]; ok {
		levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
		lvl, ok := levels[strings.ToLower(l)]
		if !ok {
			return a, usagef("--log-level must be debug, info, warn or error, not '%s'", l)
		}
		a.level = lvl
	}
	return a, nil
}

// parseNoArgs checks that a command got no arguments.
func parseNoArgs(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument '%s'", args[0])
	}
	return nil
}

func parsePeerProbe(args []string) (*dfspb.PeerProbeRequest, error) {
	switch len(args) {
	case 0:
		return nil, usagef("host missing")
	case 1:
	default:
		return nil, usagef("too many arguments: peer probe takes one HOST[:PORT]")
	}
	addr, err := hostPort(args[0])
	if err != nil {
		return nil, usagef("%v", err)
	}
	return &dfspb.PeerProbeRequest{Address: addr}, nil
}

func parsePeerDetach(args []string) (*dfspb.PeerDetachRequest, error) {
	if len(args) == 0 {
		return nil, usagef("host missing")
	}
	force, err := trailingForce(args[1:], "the host")
	if err != nil {
		return nil, err
	}
	addr, err := hostPort(args[0])
	if err != nil {
		return nil, usagef("%v", err)
	}
	return &dfspb.PeerDetachRequest{Address: addr, Force: force}, nil
}

// trailingForce accepts nothing or the single word "force" after what.
func trailingForce(rest []string, what string) (bool, error) {
	switch {
	case len(rest) == 0:
		return false, nil
	case len(rest) > 1:
		return false, usagef("too many arguments")
	case rest[0] != "force":
		return false, usagef("unexpected argument '%s'; only 'force' may follow %s", rest[0], what)
	}
	return true, nil
}

// createArgs is `dfs volume create` after parsing.
type createArgs struct {
	req *dfspb.VolumeCreateRequest
	yes bool // skip the replica 2 confirmation
}

// createKeywords are the words that may come between the volume name and
// the bricks, with what dfs says about those it does not support.
var createKeywords = map[string]string{
	"replica":       "",
	"disperse":      "",
	"redundancy":    "",
	"transport":     "",
	"stripe":        "stripe volumes are not supported; use replica or disperse",
	"arbiter":       "arbiter bricks are not supported; use replica 3",
	"thin-arbiter":  "thin-arbiter is not supported; use replica 3",
	"disperse-data": "disperse-data is not supported; give 'disperse N redundancy M' with N the total count",
}

// parseVolumeCreate parses
//
//	VOL [replica N] [disperse [N]] [redundancy M] [transport tcp] HOST:/PATH... [force] [--partitions N] [--yes]
//
// with Gluster's rules: the counts come before the bricks, each at most
// once, and force is last.
func parseVolumeCreate(args []string) (createArgs, error) {
	var out createArgs
	flags, words, err := splitFlags(args, map[string]flagKind{"partitions": valueFlag, "yes": boolFlag})
	if err != nil {
		return out, err
	}
	req := &dfspb.VolumeCreateRequest{}
	if p, ok := flags["partitions"]; ok {
		if req.Partitions, err = count("--partitions", p); err != nil {
			return out, err
		}
	}
	_, out.yes = flags["yes"]
	if len(words) == 0 {
		return out, usagef("volume name missing")
	}
	req.Name, words = words[0], words[1:]
	if isBrickLike(req.Name) {
		return out, usagef("volume name missing: '%s' is a brick", req.Name)
	}
	if len(words) > 0 && words[len(words)-1] == "force" {
		req.Force, words = true, words[:len(words)-1]
	}
	seen := map[string]bool{}
	i := 0
	for ; i < len(words); i++ {
		w := words[i]
		unsupported, ok := createKeywords[w]
		if !ok {
			break
		}
		if unsupported != "" {
			return out, usagef("%s", unsupported)
		}
		if seen[w] {
			return out, usagef("%s given twice", w)
		}
		seen[w] = true
		next := ""
		if i+1 < len(words) {
			next = words[i+1]
		}
		switch w {
		case "replica", "redundancy":
			if next == "" || next == "force" {
				return out, usagef("%s count missing", w)
			}
			n, err := count(w+" count", next)
			if err != nil {
				return out, err
			}
			if w == "replica" {
				req.Replica = n
			} else {
				req.Redundancy = n
			}
			i++
		case "disperse":
			// The count is optional: without it every brick is in one set.
			if next != "" && !isBrickLike(next) {
				if _, keyword := createKeywords[next]; !keyword && next != "force" {
					if req.Disperse, err = count("disperse count", next); err != nil {
						return out, err
					}
					i++
				}
			}
		case "transport":
			switch next {
			case "tcp":
				i++
			case "", "force":
				return out, usagef("transport missing; dfs speaks tcp")
			default:
				return out, usagef("transport '%s' is not supported; dfs speaks only tcp", next)
			}
		}
	}
	for _, w := range words[i:] {
		switch _, keyword := createKeywords[w]; {
		case w == "force":
			return out, usagef("force must be the last argument")
		case keyword:
			return out, usagef("'%s' must come before the bricks", w)
		}
		b, err := parseBrick(w)
		if err != nil {
			return out, err
		}
		req.Bricks = append(req.Bricks, b)
	}
	if len(req.Bricks) == 0 {
		return out, usagef("no bricks given; name at least one HOST:/PATH")
	}
	out.req = req
	return out, nil
}

// count parses a positive count; what names it in errors.
func count(what, s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, usagef("%s must be a number, not '%s'", what, s)
	}
	if n == 0 {
		return 0, usagef("%s must be at least 1", what)
	}
	return uint32(n), nil
}

func isBrickLike(w string) bool { return strings.Contains(w, ":/") }

// parseBrick splits HOST:/PATH at the first ":/", so HOST may carry a
// port (host:24008:/data, [fd00::1]:24008:/data) and PATH keeps its
// leading slash.
func parseBrick(s string) (*dfspb.BrickSpec, error) {
	host, rest, ok := strings.Cut(s, ":/")
	if !ok || host == "" || strings.ContainsAny(host, "/ \t") {
		return nil, usagef("brick '%s' is not HOST:/PATH", s)
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		// A bracketed IPv6 address without a port: peers know it bare.
		host = host[1 : len(host)-1]
	}
	return &dfspb.BrickSpec{Host: host, Path: "/" + rest}, nil
}

// volumeName takes the volume name from the first word.
func volumeName(args []string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, usagef("volume name missing")
	}
	return args[0], args[1:], nil
}

func parseVolumeStart(args []string) (*dfspb.VolumeStartRequest, error) {
	name, rest, err := volumeName(args)
	if err != nil {
		return nil, err
	}
	force, err := trailingForce(rest, "the volume name")
	if err != nil {
		return nil, err
	}
	return &dfspb.VolumeStartRequest{Name: name, Force: force}, nil
}

// stopArgs is `dfs volume stop` after parsing.
type stopArgs struct {
	req *dfspb.VolumeStopRequest
	yes bool
}

func parseVolumeStop(args []string) (stopArgs, error) {
	flags, words, err := splitFlags(args, map[string]flagKind{"yes": boolFlag})
	if err != nil {
		return stopArgs{}, err
	}
	name, rest, err := volumeName(words)
	if err != nil {
		return stopArgs{}, err
	}
	force, err := trailingForce(rest, "the volume name")
	if err != nil {
		return stopArgs{}, err
	}
	_, yes := flags["yes"]
	return stopArgs{req: &dfspb.VolumeStopRequest{Name: name, Force: force}, yes: yes}, nil
}

// deleteArgs is `dfs volume delete` after parsing.
type deleteArgs struct {
	req *dfspb.VolumeDeleteRequest
	yes bool
}

func parseVolumeDelete(args []string) (deleteArgs, error) {
	flags, words, err := splitFlags(args, map[string]flagKind{"yes": boolFlag})
	if err != nil {
		return deleteArgs{}, err
	}
	name, rest, err := volumeName(words)
	if err != nil {
		return deleteArgs{}, err
	}
	if len(rest) > 0 {
		return deleteArgs{}, usagef("unexpected argument '%s'", rest[0])
	}
	_, yes := flags["yes"]
	return deleteArgs{req: &dfspb.VolumeDeleteRequest{Name: name}, yes: yes}, nil
}

// allToEmpty maps the word "all" to the empty string, which the API reads
// as every volume (info, status) or every option (reset).
func allToEmpty(word string) string {
	if word == "all" {
		return ""
	}
	return word
}

func parseVolumeInfo(args []string) (*dfspb.VolumeInfoRequest, error) {
	switch len(args) {
	case 0:
		return &dfspb.VolumeInfoRequest{}, nil
	case 1:
		return &dfspb.VolumeInfoRequest{Name: allToEmpty(args[0])}, nil
	}
	return nil, usagef("too many arguments: volume info takes at most one VOL")
}

func parseVolumeStatus(args []string) (*dfspb.VolumeStatusRequest, error) {
	req := &dfspb.VolumeStatusRequest{}
	if n := len(args); n > 0 && args[n-1] == "detail" {
		req.Detail, args = true, args[:n-1]
	}
	switch len(args) {
	case 0:
	case 1:
		req.Name = allToEmpty(args[0])
	default:
		return nil, usagef("unexpected argument '%s'; only 'detail' may follow the volume name", args[1])
	}
	return req, nil
}

func parseVolumeSet(args []string) (*dfspb.VolumeSetRequest, error) {
	switch len(args) {
	case 0:
		return nil, usagef("volume name missing")
	case 1:
		return nil, usagef("option key missing")
	case 2:
		return nil, usagef("value of option %s missing", args[1])
	case 3:
		return &dfspb.VolumeSetRequest{Name: args[0], Key: args[1], Value: args[2]}, nil
	}
	return nil, usagef("too many arguments: volume set takes VOL KEY VALUE")
}

func parseVolumeGet(args []string) (*dfspb.VolumeGetRequest, error) {
	switch len(args) {
	case 0:
		return nil, usagef("volume name missing")
	case 1:
		return nil, usagef("option key missing; give a KEY or 'all'")
	case 2:
		return &dfspb.VolumeGetRequest{Name: args[0], Key: args[1]}, nil
	}
	return nil, usagef("too many arguments: volume get takes VOL KEY|all")
}

func parseVolumeReset(args []string) (*dfspb.VolumeResetRequest, error) {
	switch len(args) {
	case 0:
		return nil, usagef("volume name missing")
	case 1:
		return &dfspb.VolumeResetRequest{Name: args[0]}, nil
	case 2:
		return &dfspb.VolumeResetRequest{Name: args[0], Key: allToEmpty(args[1])}, nil
	}
	return nil, usagef("too many arguments: volume reset takes VOL [KEY|all]")
}
