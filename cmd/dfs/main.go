// Command dfs runs a dfs server and manages a dfs pool, with the grammar
// and output of Gluster's gluster(8) command.
//
//	dfs [--server HOST[:PORT]] [--json] [--timeout DURATION] COMMAND [ARGS]
//
// `dfs server` runs the server of this machine. Every other command is a
// gRPC client (plaintext) of one server, --server or $DFS_SERVER, by
// default 127.0.0.1:24007; that server forwards changes to the leader of
// the volume manager:
//
//	dfs peer probe HOST[:PORT]          dfs volume create VOL [replica N] ... HOST:/PATH...
//	dfs peer detach HOST[:PORT] [force] dfs volume start|stop|delete VOL
//	dfs peer status                     dfs volume info|status [VOL|all]
//	dfs pool list                       dfs volume list|set|get|reset ...
//
// Structure: args.go parses every command line with pure functions, peer.go
// and volume.go make the calls, format.go renders responses, server.go runs
// the server. docs/cli.md is the reference.
//
// Exit status: 0 on success, 1 when the request failed (the message on
// stderr reads "volume create: VOL: failed: ..." as in Gluster, or
// "Connection failed ..." when no server answers) or a confirmation was
// declined, 2 on a usage error. With --json every command prints its
// response as JSON (protobuf field names) instead of text.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/proto/dfspb"
)

func main() {
	c := &cli{
		stdin:       bufio.NewReader(os.Stdin),
		stdout:      os.Stdout,
		stderr:      os.Stderr,
		interactive: isTerminal(os.Stdin),
	}
	var code int
	if filepath.Base(os.Args[0]) == "mount.dfs" {
		code = runMountHelper(context.Background(), c, os.Args[1:])
	} else {
		code = c.run(context.Background(), os.Args[1:], os.Getenv)
	}
	if c.conn != nil {
		c.conn.Close()
	}
	os.Exit(code)
}

// isTerminal reports whether f is a terminal (Linux: it answers TCGETS).
// A character device is not enough: /dev/null is one.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// helpCommand is the word that asks for help: dfs help, dfs volume help.
const helpCommand = "help"

// command is one dfs command: its words, usage and what it does.
type command struct {
	name  string // "volume create"
	usage string // synopsis (one or more lines), a blank line, then details
	run   func(ctx context.Context, c *cli, args []string) error
}

// commands lists every command in the order `dfs help` shows them.
var commands = []command{
	{"server", serverUsage, runServer},
	{"peer probe", "dfs peer probe HOST[:PORT]\n\nAdd the dfs server at HOST (port 24007 unless given) to the pool.", runPeerProbe},
	{"peer detach", "dfs peer detach HOST[:PORT] [force]\n\nRemove a server from the pool. A server that hosts bricks is refused\nunless force is given.", runPeerDetach},
	{"peer status", "dfs peer status\n\nShow every peer of the pool except the server asked: address, id,\nconnection state and role in the volume manager.", runPeerStatus},
	{"pool list", "dfs pool list\n\nShow every server of the pool, the one asked included, as a table.", runPoolList},
	{"volume create", createUsage, runVolumeCreate},
	{"volume start", "dfs volume start VOL [force]\n\nStart the bricks of a volume and make it mountable. force starts it\nagain when it is started, to restart bricks that are down.", runVolumeStart},
	{"volume stop", "dfs volume stop VOL [force] [--yes]\n\nStop the bricks of a started volume (force: of a volume in any state).\nAsks for confirmation when stdin is a terminal, unless --yes.", runVolumeStop},
	{"volume delete", "dfs volume delete VOL [--yes]\n\nDelete a volume that is not started, with its data: every file in its\nbricks is removed. Asks for confirmation when stdin is a terminal,\nunless --yes.", runVolumeDelete},
	{"volume info", "dfs volume info [VOL|all]\n\nShow the configuration of one volume or of every volume.", runVolumeInfo},
	{"volume list", "dfs volume list\n\nList the names of every volume, one a line.", runVolumeList},
	{"volume status", "dfs volume status [VOL|all] [detail]\n\nShow the bricks of started volumes (port, online, pid) and each\nsubvolume's members and leader. detail adds disk space, inodes, file\nsystem, device and errors of every brick.", runVolumeStatus},
	{"volume set", "dfs volume set VOL KEY VALUE\n\nSet a volume option. 'dfs volume get VOL all' lists the options.", runVolumeSet},
	{"volume get", "dfs volume get VOL KEY|all\n\nShow the value of one option or of every option; values not set are\nmarked (DEFAULT).", runVolumeGet},
	{"volume reset", "dfs volume reset VOL [KEY|all]\n\nReturn one option, or every option, to its default.", runVolumeReset},
	{"volume heal", healUsage, runVolumeHeal},
	{"volume replace-brick", replaceBrickUsage, runVolumeReplaceBrick},
	{"volume scrub", scrubUsage, runVolumeScrub},
	{"volume bitrot", bitrotUsage, runVolumeBitrot},
	{"volume fsck", fsckUsage, runVolumeFsck},
	{"mount", mountUsage, runMount},
	{"dev", devUsage, runDev},
}

const mainUsage = `Usage: dfs [--server HOST[:PORT]] [--json] [--timeout DURATION] COMMAND [ARGS]

Run a dfs server, or manage a dfs pool through any of its servers.

Commands:
%s
Global options (before COMMAND):
  --server HOST[:PORT]  server to ask (default $DFS_SERVER, else 127.0.0.1:24007;
                        port 24007 when omitted)
  --json                print responses as JSON instead of text
  --timeout DURATION    deadline of every request (default 30s)
  --help                print this help

Run 'dfs help COMMAND' or 'dfs COMMAND --help' for one command's usage.
`

// mainHelp renders the usage of dfs with the synopsis of every command,
// or of the commands of one group ("volume").
func mainHelp(group string) string {
	var b strings.Builder
	for _, cmd := range commands {
		if group != "" && !strings.HasPrefix(cmd.name, group+" ") {
			continue
		}
		synopsis, _, _ := strings.Cut(cmd.usage, "\n\n")
		for _, line := range strings.Split(synopsis, "\n") {
			fmt.Fprintf(&b, "  %s\n", line)
		}
	}
	return fmt.Sprintf(mainUsage, b.String())
}

func commandHelp(cmd *command) string {
	return "Usage: " + cmd.usage + "\n"
}

// lookup finds the command named by the first words of args. When it finds
// none, group is the group the first word named ("volume"), if any.
func lookup(args []string) (cmd *command, rest []string, group string) {
	for i := range commands {
		words := strings.Fields(commands[i].name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == commands[i].name {
			return &commands[i], args[len(words):], ""
		}
		if len(args) > 0 && words[0] == args[0] {
			group = args[0]
		}
	}
	return nil, nil, group
}

// cli is one run of the command: its options, terminal and connection.
type cli struct {
	opts   globalOptions
	stdin  *bufio.Reader
	stdout io.Writer
	stderr io.Writer
	// interactive is true when stdin is a terminal: only then does dfs
	// ask before stopping or deleting a volume or creating replica 2.
	interactive bool
	conn        *grpc.ClientConn
}

// run executes one command line and returns the exit status.
func (c *cli) run(ctx context.Context, args []string, getenv func(string) string) int {
	opts, rest, err := parseGlobal(args, getenv)
	if err != nil {
		fmt.Fprintf(c.stderr, "dfs: %v\n\n%s", err, mainHelp(""))
		return exitUsage
	}
	c.opts = opts
	switch {
	case opts.help:
		return c.help(rest)
	case len(rest) == 0:
		fmt.Fprint(c.stderr, mainHelp(""))
		return exitUsage
	case rest[0] == helpCommand:
		return c.help(rest[1:])
	}
	cmd, cmdArgs, group := lookup(rest)
	if cmd == nil {
		if group == "" {
			fmt.Fprintf(c.stderr, "dfs: unknown command '%s'\n\n%s", rest[0], mainHelp(""))
			return exitUsage
		}
		if len(rest) > 1 && (rest[1] == helpCommand || isHelpFlag(rest[1])) {
			fmt.Fprint(c.stdout, mainHelp(group))
			return exitOK
		}
		if len(rest) == 1 {
			fmt.Fprintf(c.stderr, "dfs: %s: command missing\n\n%s", group, mainHelp(group))
		} else {
			fmt.Fprintf(c.stderr, "dfs: unknown command '%s %s'\n\n%s", group, rest[1], mainHelp(group))
		}
		return exitUsage
	}
	cmdArgs, help, json := commonFlags(cmdArgs)
	if help {
		fmt.Fprint(c.stdout, commandHelp(cmd))
		return exitOK
	}
	c.opts.json = c.opts.json || json
	return c.report(cmd, cmd.run(ctx, c, cmdArgs))
}

func isHelpFlag(a string) bool { return a == "--help" || a == "-help" || a == "-h" }

// help prints the usage of the command named by words, or of dfs.
func (c *cli) help(words []string) int {
	if len(words) == 0 {
		fmt.Fprint(c.stdout, mainHelp(""))
		return exitOK
	}
	cmd, rest, group := lookup(words)
	switch {
	case cmd != nil && len(rest) == 0:
		fmt.Fprint(c.stdout, commandHelp(cmd))
		return exitOK
	case cmd == nil && group != "" && len(words) == 1:
		fmt.Fprint(c.stdout, mainHelp(group))
		return exitOK
	}
	fmt.Fprintf(c.stderr, "dfs: no help for '%s'\n\n%s", strings.Join(words, " "), mainHelp(""))
	return exitUsage
}

// errDeclined is returned when the user answers no to a confirmation.
var errDeclined = errors.New("declined")

// opError is a failed request of an operation, op being Gluster's prefix:
// "volume create: gv0".
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return e.op + ": failed: " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// report prints err the way Gluster does and returns the exit status.
func (c *cli) report(cmd *command, err error) int {
	var usage *usageError
	var op *opError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage):
		fmt.Fprintf(c.stderr, "dfs %s: %s\n\n%s", cmd.name, usage.msg, commandHelp(cmd))
		return exitUsage
	case errors.Is(err, errDeclined):
		return exitFailed
	case errors.As(err, &op):
		st := status.Convert(op.err)
		if c.connectionFailed(st.Code()) {
			fmt.Fprintf(c.stderr, "Connection failed. Please check if dfs server is running on %s (start it with 'dfs server --listen %s').\n", c.opts.server, c.opts.server)
		} else {
			fmt.Fprintf(c.stderr, "%s: failed: %s\n", op.op, st.Message())
		}
		return exitFailed
	}
	fmt.Fprintf(c.stderr, "dfs: %v\n", err)
	return exitFailed
}

// connectionFailed tells whether an RPC that ended with code never reached
// a server: a server may itself answer Unavailable (no manager leader),
// but then the connection is ready.
func (c *cli) connectionFailed(code codes.Code) bool {
	if code != codes.Unavailable && code != codes.DeadlineExceeded {
		return false
	}
	return c.conn == nil || c.conn.GetState() != connectivity.Ready
}

// dial returns the connection to the server, made on first use.
func (c *cli) dial() (*grpc.ClientConn, error) {
	if c.conn == nil {
		conn, err := grpc.NewClient(c.opts.server, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		c.conn = conn
	}
	return c.conn, nil
}

// call runs one RPC of the operation op under the --timeout deadline.
func (c *cli) call(ctx context.Context, op string, rpc func(context.Context, dfspb.ManagerClient) error) error {
	conn, err := c.dial()
	if err != nil {
		return &opError{op: op, err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	if err := rpc(ctx, dfspb.NewManagerClient(conn)); err != nil {
		return &opError{op: op, err: err}
	}
	return nil
}

// confirm asks question on a terminal and reports whether the answer is
// yes. Without a terminal it does not ask and returns true.
func (c *cli) confirm(question string) bool {
	if !c.interactive {
		return true
	}
	fmt.Fprintf(c.stderr, "%s (y/n) ", question)
	answer, _ := c.stdin.ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return true
	}
	return false
}

// output prints resp as JSON under --json, else writes text.
func (c *cli) output(resp proto.Message, text func(io.Writer)) error {
	if c.opts.json {
		return writeJSON(c.stdout, resp)
	}
	text(c.stdout)
	return nil
}
