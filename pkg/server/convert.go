package server

import (
	"sort"

	"github.com/dfsproject/dfs/proto/dfspb"
	"github.com/dfsproject/dfs/volume"
)

func lifecycleToProto(l volume.Lifecycle) dfspb.VolumeState {
	switch l {
	case volume.Created:
		return dfspb.VolumeState_VOLUME_STATE_CREATED
	case volume.Started:
		return dfspb.VolumeState_VOLUME_STATE_STARTED
	case volume.Stopped:
		return dfspb.VolumeState_VOLUME_STATE_STOPPED
	}
	return dfspb.VolumeState_VOLUME_STATE_UNSPECIFIED
}

func volumeToProto(v *volume.Volume) *dfspb.Volume {
	out := &dfspb.Volume{
		Id:              v.ID,
		Name:            v.Name,
		Type:            v.Type(),
		ReplicaCount:    uint32(v.Replica),
		DisperseCount:   uint32(v.Disperse),
		RedundancyCount: uint32(v.Redundancy),
		State:           lifecycleToProto(v.State),
		Options:         v.Options,
		Partitions:      uint32(len(v.Partitions)),
		SubvolumeCount:  uint32(v.Subvolumes()),
		CreatedUnix:     v.Created,
		LayoutVersion:   v.Version,
	}
	for _, b := range v.Bricks {
		out.Bricks = append(out.Bricks, &dfspb.Brick{Host: b.Host, Path: b.Path, ServerId: b.ServerID, Subvolume: uint32(b.Subvolume), Port: uint32(b.Port)})
	}
	return out
}

func layoutToProto(st *volume.State, v *volume.Volume) *dfspb.VolumeLayout {
	out := &dfspb.VolumeLayout{
		VolumeId:        v.ID,
		VolumeName:      v.Name,
		Version:         v.Version,
		Type:            v.Type(),
		ReplicaCount:    uint32(v.Replica),
		DisperseCount:   uint32(v.Disperse),
		RedundancyCount: uint32(v.Redundancy),
		State:           lifecycleToProto(v.State),
		Options:         v.Options,
	}
	for i := 0; i < v.Subvolumes(); i++ {
		out.Subvolumes = append(out.Subvolumes, &dfspb.Subvolume{Index: uint32(i)})
	}
	for _, b := range v.Bricks {
		sv := out.Subvolumes[b.Subvolume]
		sv.Bricks = append(sv.Bricks, &dfspb.BrickEndpoint{Host: st.BrickHost(b), Path: b.Path, Port: uint32(b.Port), ServerId: b.ServerID})
	}
	for _, p := range v.Partitions {
		out.Partitions = append(out.Partitions, uint32(p))
	}
	for _, p := range st.Peers {
		out.Servers = append(out.Servers, p.Address)
	}
	sort.Strings(out.Servers)
	return out
}
