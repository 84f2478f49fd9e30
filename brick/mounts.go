package brick

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
)

// mountOf finds the file system type and device of the mount holding path,
// from /proc/self/mounts (the longest matching mount point wins).
func mountOf(path string) (fsType, device string) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	path, _ = filepath.EvalSymlinks(path)
	best := -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		mp := strings.ReplaceAll(fields[1], `\040`, " ")
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > best {
			best, device, fsType = len(mp), fields[0], fields[2]
		}
	}
	return fsType, device
}
