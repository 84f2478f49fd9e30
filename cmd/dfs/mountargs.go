package main

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// mountArgs is `dfs mount` (or mount.dfs) after parsing.
type mountArgs struct {
	servers      []string // host:port, first the source's, then backups
	volume       string
	dir          string
	foreground   bool
	readOnly     bool
	logFile      string
	logLevel     slog.Level
	fuseTrace    bool // log-level=TRACE: log every FUSE request too
	attrTimeout  time.Duration
	entryTimeout time.Duration
	debugAddr    string // HOST:PORT serving /metrics and /debug/pprof/
	readAheadKB  int    // read-ahead-kb=; 0: not given (1024); -1: the kernel's
}

// ignoredMountOptions are mount(8)'s generic options, passed through to
// the helper verbatim; they mean nothing to dfs.
var ignoredMountOptions = map[string]bool{
	"defaults": true, "auto": true, "noauto": true, "user": true, "nouser": true,
	"users": true, "nofail": true, "_netdev": true, "rw": true, "exec": true,
	"noexec": true, "suid": true, "nosuid": true, "dev": true, "nodev": true,
	"async": true, "sync": true, "atime": true, "noatime": true, "relatime": true,
	"norelatime": true, "strictatime": true, "diratime": true, "nodiratime": true,
}

// parseMount parses `dfs mount [-f] [-o OPTS] HOST[,HOST...]:/VOL DIR`.
// mount(8) calls /sbin/mount.dfs SOURCE DIR [-sfnv] -o OPTS; for the
// helper (helper true) -f means mount(8)'s "fake" and -s, -n, -v are
// accepted and ignored.
func parseMount(args []string, helper bool) (mountArgs, error) {
	a := mountArgs{logLevel: slog.LevelInfo, attrTimeout: time.Second, entryTimeout: time.Second}
	var words, opts []string
	for i := 0; i < len(args); i++ {
		switch w := args[i]; {
		case w == "-o" || w == "--options":
			if i+1 == len(args) {
				return a, usagef("-o needs a list of options")
			}
			i++
			opts = append(opts, args[i])
		case strings.HasPrefix(w, "-o") && len(w) > 2:
			opts = append(opts, w[2:])
		case w == "-f" || w == "--foreground":
			if helper {
				return a, usagef("mount.dfs: -f (fake mount) is not supported")
			}
			a.foreground = true
		case helper && (w == "-s" || w == "-n" || w == "-v" || w == "-i"):
		case strings.HasPrefix(w, "-") && w != "-":
			return a, usagef("unknown option '%s'", w)
		default:
			words = append(words, w)
		}
	}
	if len(words) != 2 {
		return a, usagef("give the source HOST[,HOST...]:/VOL and the mount point")
	}
	src, dir := words[0], words[1]
	hosts, vol, ok := strings.Cut(src, ":/")
	if !ok || hosts == "" || vol == "" || strings.Contains(vol, "/") {
		return a, usagef("source '%s' is not HOST[,HOST...]:/VOLUME", src)
	}
	a.volume = vol
	for _, h := range strings.Split(hosts, ",") {
		hp, err := hostPort(h)
		if err != nil {
			return a, usagef("source '%s': %v", src, err)
		}
		a.servers = append(a.servers, hp)
	}
	if !filepath.IsAbs(dir) {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return a, usagef("mount point '%s': %v", dir, err)
		}
		dir = abs
	}
	a.dir = filepath.Clean(dir)
	for _, list := range opts {
		for _, o := range strings.Split(list, ",") {
			if err := a.option(strings.TrimSpace(o)); err != nil {
				return a, err
			}
		}
	}
	return a, nil
}

func (a *mountArgs) option(o string) error {
	key, val, hasVal := strings.Cut(o, "=")
	switch {
	case o == "" || ignoredMountOptions[o] || strings.HasPrefix(o, "x-") || key == "comment":
	case o == "ro":
		a.readOnly = true
	case key == "backup-volfile-servers" || key == "backupvolfile-server":
		// Gluster separates the hosts with ':'; dfs also takes
		// HOST:PORT (a number after a host is its port).
		var hosts []string
		for _, tok := range strings.FieldsFunc(val, func(r rune) bool { return r == ':' || r == ',' }) {
			if _, err := strconv.Atoi(tok); err == nil && len(hosts) > 0 && !strings.Contains(hosts[len(hosts)-1], ":") {
				hosts[len(hosts)-1] += ":" + tok
				continue
			}
			hosts = append(hosts, tok)
		}
		for _, h := range hosts {
			hp, err := hostPort(h)
			if err != nil {
				return usagef("%s: %v", key, err)
			}
			a.servers = append(a.servers, hp)
		}
	case key == "log-file" && hasVal && val != "":
		a.logFile = val
	case key == "log-level" && hasVal:
		levels := map[string]slog.Level{"DEBUG": slog.LevelDebug, "TRACE": slog.LevelDebug, "INFO": slog.LevelInfo,
			"WARNING": slog.LevelWarn, "WARN": slog.LevelWarn, "ERROR": slog.LevelError, "CRITICAL": slog.LevelError}
		lvl, ok := levels[strings.ToUpper(val)]
		if !ok {
			return usagef("log-level must be DEBUG, INFO, WARNING or ERROR, not '%s'", val)
		}
		a.logLevel = lvl
		a.fuseTrace = strings.EqualFold(val, "TRACE")
	case (key == "attribute-timeout" || key == "entry-timeout") && hasVal:
		secs, err := strconv.ParseFloat(val, 64)
		if err != nil || secs < 0 || secs > 3600 {
			return usagef("%s must be a number of seconds from 0 to 3600, not '%s'", key, val)
		}
		d := time.Duration(secs * float64(time.Second))
		if key == "attribute-timeout" {
			a.attrTimeout = d
		} else {
			a.entryTimeout = d
		}
	case key == "read-ahead-kb" && hasVal:
		kb, err := strconv.Atoi(val)
		if err != nil || kb < 0 || kb > 65536 {
			return usagef("read-ahead-kb must be a number of KiB from 0 (the kernel's default) to 65536, not '%s'", val)
		}
		a.readAheadKB = kb
		if kb == 0 {
			a.readAheadKB = -1
		}
	case key == "debug-addr" && hasVal:
		host, port, err := net.SplitHostPort(val)
		if p, perr := strconv.ParseUint(port, 10, 16); err != nil || host == "" || perr != nil || p == 0 {
			return usagef("debug-addr must be HOST:PORT to serve metrics and profiles on (e.g. 127.0.0.1:6060), not '%s'", val)
		}
		a.debugAddr = val
	default:
		return usagef("unknown mount option '%s' (known: ro, backup-volfile-servers=H2:H3, log-file=, log-level=, attribute-timeout=, entry-timeout=, read-ahead-kb=, debug-addr=)", o)
	}
	return nil
}

// source is the mount's fsname: the first server and the volume.
func (a mountArgs) source() string {
	host := a.servers[0]
	if h, p, ok := strings.Cut(host, ":"); ok && p == "24007" {
		host = h
	}
	return fmt.Sprintf("%s:/%s", host, a.volume)
}

// argv renders the arguments for the foreground daemon process.
func (a mountArgs) argv() []string {
	out := []string{"mount", "-f"}
	var opts []string
	if a.readOnly {
		opts = append(opts, "ro")
	}
	if len(a.servers) > 1 {
		opts = append(opts, "backup-volfile-servers="+strings.Join(a.servers[1:], ":"))
	}
	if a.logFile != "" {
		opts = append(opts, "log-file="+a.logFile)
	}
	if a.debugAddr != "" {
		opts = append(opts, "debug-addr="+a.debugAddr)
	}
	if a.readAheadKB != 0 {
		opts = append(opts, "read-ahead-kb="+strconv.Itoa(max(a.readAheadKB, 0)))
	}
	level := strings.ToUpper(a.logLevel.String())
	if a.fuseTrace {
		level = "TRACE"
	}
	opts = append(opts, "log-level="+level)
	opts = append(opts, fmt.Sprintf("attribute-timeout=%g", a.attrTimeout.Seconds()), fmt.Sprintf("entry-timeout=%g", a.entryTimeout.Seconds()))
	out = append(out, "-o", strings.Join(opts, ","))
	return append(out, strings.Join(a.servers[:1], "")+":/"+a.volume, a.dir)
}
