package brick

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// MetaDir is the directory dfs keeps inside every brick, like Gluster's
// .glusterfs: the volume marker, the store and the Raft state live here.
const MetaDir = ".dfs"

// markerFile holds the id of the volume a brick directory belongs to, the
// counterpart of Gluster's trusted.glusterfs.volume-id.
const markerFile = "volume-id"

// Errors about brick directories.
var (
	ErrInUse      = errors.New("brick: directory already used by a volume")
	ErrNotEmpty   = errors.New("brick: directory not empty")
	ErrNoMarker   = errors.New("brick: volume marker missing")
	ErrWrongOwner = errors.New("brick: directory belongs to another volume")
	ErrBadPath    = errors.New("brick: bad path")
)

// Prepare checks that dir may become a brick of volume volumeID and marks
// it: dir must be absolute and either absent (it is created) or an empty
// directory, and not marked by any volume. It returns whether it created
// dir, so that a failed create can remove what it made.
func Prepare(dir, volumeID string) (created bool, err error) {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return false, fmt.Errorf("%w: %s is not a clean absolute path", ErrBadPath, dir)
	}
	if id, err := readMarker(dir); err == nil {
		return false, fmt.Errorf("%w: %s is a brick of volume %s", ErrInUse, dir, id)
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, fmt.Errorf("brick: create %s: %w", dir, err)
		}
		created = true
	case err != nil:
		return false, fmt.Errorf("brick: %s: %w", dir, err)
	case !fi.IsDir():
		return false, fmt.Errorf("%w: %s is not a directory", ErrBadPath, dir)
	default:
		empty, err := isEmpty(dir)
		if err != nil {
			return false, fmt.Errorf("brick: %s: %w", dir, err)
		}
		if !empty {
			return false, fmt.Errorf("%w: %s holds files; give an empty or absent directory", ErrNotEmpty, dir)
		}
	}
	if err := writeMarker(dir, volumeID); err != nil {
		if created {
			os.RemoveAll(dir)
		}
		return false, err
	}
	return created, nil
}

// Release undoes Prepare for volume volumeID: it removes dfs's metadata
// from dir, and dir itself when removeDir is set and dir is then empty.
// purge removes every file in the brick (volume delete). A directory marked
// by another volume is left alone.
func Release(dir, volumeID string, purge, removeDir bool) error {
	id, err := readMarker(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if id != volumeID {
		return fmt.Errorf("%w: %s belongs to volume %s, not %s", ErrWrongOwner, dir, id, volumeID)
	}
	if purge {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("brick: %w", err)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("brick: purge %s: %w", dir, err)
			}
		}
	} else if err := os.RemoveAll(filepath.Join(dir, MetaDir)); err != nil {
		return fmt.Errorf("brick: %w", err)
	}
	if removeDir {
		if empty, _ := isEmpty(dir); empty {
			os.Remove(dir)
		}
	}
	return nil
}

// CheckMarker verifies that dir is a brick of volumeID. A missing marker
// usually means the brick's disk is not mounted: serving the empty mount
// point would look like data loss, so the brick refuses to start.
func CheckMarker(dir, volumeID string) error {
	id, err := readMarker(dir)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s has no %s/%s; is the brick's file system mounted?", ErrNoMarker, dir, MetaDir, markerFile)
	}
	if err != nil {
		return err
	}
	if id != volumeID {
		return fmt.Errorf("%w: %s belongs to volume %s, not %s", ErrWrongOwner, dir, id, volumeID)
	}
	return nil
}

func readMarker(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, MetaDir, markerFile))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func writeMarker(dir, volumeID string) error {
	meta := filepath.Join(dir, MetaDir)
	if err := os.MkdirAll(meta, 0o700); err != nil {
		return fmt.Errorf("brick: %w", err)
	}
	tmp := filepath.Join(meta, markerFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("brick: write marker: %w", err)
	}
	_, err = f.WriteString(volumeID + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(meta, markerFile))
	}
	if err != nil {
		return fmt.Errorf("brick: write marker: %w", err)
	}
	return nil
}

func isEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}
