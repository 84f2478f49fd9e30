package main

// Rendering of responses in Gluster's output shapes. Every function writes
// to the io.Writer it is given and does nothing else, so tests compare
// golden strings.

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// writeJSON prints m as the --json output of every command.
func writeJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// newTable returns the tabwriter of every table: columns two spaces apart.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// row writes cells as one tab-separated table row.
func row(tw io.Writer, cells ...string) {
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

// underline writes a row of dashes as long as each header cell.
func underline(tw io.Writer, headers ...string) {
	dashes := make([]string, len(headers))
	for i, h := range headers {
		dashes[i] = strings.Repeat("-", len(h))
	}
	row(tw, dashes...)
}

// stateName is Gluster's word for a volume state.
func stateName(s dfspb.VolumeState) string {
	switch s {
	case dfspb.VolumeState_VOLUME_STATE_CREATED:
		return "Created"
	case dfspb.VolumeState_VOLUME_STATE_STARTED:
		return "Started"
	case dfspb.VolumeState_VOLUME_STATE_STOPPED:
		return "Stopped"
	}
	return "Unknown"
}

// peerState is the connection half of Gluster's peer state.
func peerState(p *dfspb.Peer) string {
	if p.GetConnected() {
		return "Connected"
	}
	return "Disconnected"
}

// peerRole is "voter" or "non-voter", followed by mark in parentheses
// when the peer leads the volume manager.
func peerRole(p *dfspb.Peer, leaderID, mark string) string {
	role := "non-voter"
	if p.GetVoter() {
		role = "voter"
	}
	if p.GetLeader() || p.GetId() != "" && p.GetId() == leaderID {
		role += " (" + mark + ")"
	}
	return role
}

// selfPeer returns the id of the peer that answered: the id the server gave
// for itself (empty if it did not say), else the peer whose address is the
// one the CLI dialled; empty when neither tells.
func selfPeer(peers []*dfspb.Peer, identityID, dialled string) string {
	for _, p := range peers {
		if identityID != "" && p.GetId() == identityID {
			return p.GetId()
		}
	}
	for _, p := range peers {
		if p.GetAddress() == dialled {
			return p.GetId()
		}
	}
	return ""
}

// formatPeerStatus writes `peer status`: every peer but the answering one
// (selfID), or every peer when selfID is empty.
func formatPeerStatus(w io.Writer, resp *dfspb.PeerListResponse, selfID string) {
	var others []*dfspb.Peer
	for _, p := range resp.GetPeers() {
		if selfID == "" || p.GetId() != selfID {
			others = append(others, p)
		}
	}
	fmt.Fprintf(w, "Number of Peers: %d\n", len(others))
	for _, p := range others {
		fmt.Fprintf(w, "\nHostname: %s\nUuid: %s\nState: Peer in Cluster (%s)\nRole: %s\n",
			p.GetAddress(), p.GetId(), peerState(p), peerRole(p, resp.GetLeaderId(), "manager leader"))
	}
}

// formatPoolList writes `pool list`: every peer, the answering one marked.
func formatPoolList(w io.Writer, resp *dfspb.PeerListResponse, selfID string) {
	tw := newTable(w)
	row(tw, "UUID", "Hostname", "State", "Role")
	for _, p := range resp.GetPeers() {
		host := p.GetAddress()
		if selfID != "" && p.GetId() == selfID {
			host += " (this server)"
		}
		row(tw, p.GetId(), host, peerState(p), peerRole(p, resp.GetLeaderId(), "leader"))
	}
	tw.Flush()
}

// setSize is the number of bricks in one subvolume of v.
func setSize(v *dfspb.Volume) uint32 {
	switch {
	case v.GetDisperseCount() > 0:
		return v.GetDisperseCount()
	case v.GetReplicaCount() > 0:
		return v.GetReplicaCount()
	}
	return 1
}

// brickCount is Gluster's "Number of Bricks": "6" for distribute,
// "2 x 3 = 6" for replicate, "1 x (4 + 2) = 6" for disperse.
func brickCount(v *dfspb.Volume) string {
	total := uint32(len(v.GetBricks()))
	set := setSize(v)
	subvolumes := v.GetSubvolumeCount()
	if subvolumes == 0 {
		subvolumes = total / set
	}
	switch {
	case v.GetDisperseCount() > 0:
		k := v.GetDisperseCount() - v.GetRedundancyCount()
		return fmt.Sprintf("%d x (%d + %d) = %d", subvolumes, k, v.GetRedundancyCount(), total)
	case set > 1:
		return fmt.Sprintf("%d x %d = %d", subvolumes, set, total)
	}
	return fmt.Sprint(total)
}

// formatVolumeInfo writes `volume info` blocks, each after a blank line as
// Gluster does.
func formatVolumeInfo(w io.Writer, vols []*dfspb.Volume) {
	if len(vols) == 0 {
		fmt.Fprintln(w, "No volumes present")
		return
	}
	for _, v := range vols {
		fmt.Fprintf(w, "\nVolume Name: %s\n", v.GetName())
		fmt.Fprintf(w, "Type: %s\n", v.GetType())
		fmt.Fprintf(w, "Volume ID: %s\n", v.GetId())
		fmt.Fprintf(w, "Status: %s\n", stateName(v.GetState()))
		fmt.Fprintf(w, "Number of Bricks: %s\n", brickCount(v))
		fmt.Fprintf(w, "Transport-type: tcp\n")
		fmt.Fprintf(w, "Partitions: %d\n", v.GetPartitions())
		fmt.Fprintf(w, "Layout Version: %d\n", v.GetLayoutVersion())
		fmt.Fprintf(w, "Bricks:\n")
		for i, b := range v.GetBricks() {
			fmt.Fprintf(w, "Brick%d: %s:%s\n", i+1, b.GetHost(), b.GetPath())
		}
		if len(v.GetOptions()) > 0 {
			fmt.Fprintf(w, "Options Reconfigured:\n")
			keys := make([]string, 0, len(v.GetOptions()))
			for k := range v.GetOptions() {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(w, "%s: %s\n", k, v.GetOptions()[k])
			}
		}
	}
}

// formatVolumeList writes `volume list`: one name a line.
func formatVolumeList(w io.Writer, vols []*dfspb.Volume) {
	if len(vols) == 0 {
		fmt.Fprintln(w, "No volumes present in cluster")
		return
	}
	for _, v := range vols {
		fmt.Fprintln(w, v.GetName())
	}
}

// yesNo is Gluster's Online column.
func yesNo(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}

// orNA prints zero as N/A, as Gluster does for offline ports and pids.
func orNA[T uint32 | int64](n T, online bool) string {
	if n == 0 || !online {
		return "N/A"
	}
	return fmt.Sprint(n)
}

// detailRule separates the bricks of `volume status VOL detail`.
var detailRule = strings.Repeat("-", 78)

// formatVolumeStatus writes the status of one started volume: the brick
// table (or, with detail, one block per brick) and its subvolumes.
func formatVolumeStatus(w io.Writer, e *dfspb.VolumeStatusEntry, detail bool) {
	fmt.Fprintf(w, "Status of volume: %s\n", e.GetName())
	if detail {
		fmt.Fprintln(w, detailRule)
		for _, b := range e.GetBricks() {
			field := func(name, value string) { fmt.Fprintf(w, "%-21s: %s\n", name, value) }
			field("Brick", b.GetHost()+":"+b.GetPath())
			field("Port", orNA(b.GetPort(), b.GetOnline()))
			field("Online", yesNo(b.GetOnline()))
			field("Pid", orNA(b.GetPid(), b.GetOnline()))
			field("File System", orDash(b.GetFsType()))
			field("Device", orDash(b.GetDevice()))
			field("Disk Space Free", humanSize(b.GetFreeBytes()))
			field("Total Disk Space", humanSize(b.GetTotalBytes()))
			field("Inode Count", fmt.Sprint(b.GetTotalInodes()))
			field("Free Inodes", fmt.Sprint(b.GetFreeInodes()))
			if b.GetError() != "" {
				field("Error", b.GetError())
			}
			fmt.Fprintln(w, detailRule)
		}
	} else {
		tw := newTable(w)
		row(tw, "Brick", "Port", "Online", "Pid")
		underline(tw, "Brick", "Port", "Online", "Pid")
		for _, b := range e.GetBricks() {
			row(tw, b.GetHost()+":"+b.GetPath(), orNA(b.GetPort(), b.GetOnline()), yesNo(b.GetOnline()), orNA(b.GetPid(), b.GetOnline()))
		}
		tw.Flush()
	}
	if len(e.GetSubvolumes()) == 0 {
		return
	}
	fmt.Fprintf(w, "\nSubvolumes of volume: %s\n", e.GetName())
	tw := newTable(w)
	row(tw, "Subvolume", "Leader", "Members")
	underline(tw, "Subvolume", "Leader", "Members")
	for _, s := range e.GetSubvolumes() {
		leader := s.GetLeader()
		if leader == "" {
			leader = "N/A"
		}
		row(tw, fmt.Sprint(s.GetIndex()), leader, strings.Join(s.GetMembers(), ", "))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatVolumeGet writes `volume get`: each option's effective value,
// marked (DEFAULT) when it is not set, as Gluster does.
func formatVolumeGet(w io.Writer, opts []*dfspb.VolumeOption) {
	tw := newTable(w)
	row(tw, "Option", "Value")
	underline(tw, "Option", "Value")
	for _, o := range opts {
		value := o.GetValue()
		if !o.GetSet() {
			if value == "" {
				value = o.GetDefault()
			}
			value += " (DEFAULT)"
		}
		row(tw, o.GetKey(), value)
	}
	tw.Flush()
}

// humanSize writes a byte count with binary units and one decimal, as
// Gluster's status detail does: 512B, 1.5KB, 9.8GB.
func humanSize(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	v := float64(n) / 1024
	i := 0
	for v >= 1023.95 && i < len(units)-1 { // 1023.96 would print as 1024.0
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f%cB", v, units[i])
}
