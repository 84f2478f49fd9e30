package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInvalidCreates runs each invalid `volume create` of Gluster's rules:
// each must exit non-zero, say why, and leave no volume and no brick
// directory behind.
func TestInvalidCreates(t *testing.T) {
	c := pool(t, 3)
	a := c.servers[0].addr
	h1, h2, h3 := c.servers[0].host, c.servers[1].host, c.servers[2].host
	root := t.TempDir()
	p := func(name string) string { return filepath.Join(root, name) }

	// Fixtures: a non-empty directory, a file, a directory marked by some
	// volume, and a volume whose bricks others may not reuse.
	if err := os.MkdirAll(p("full"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(p("full"), "data"), []byte("x"), 0o644)
	os.WriteFile(p("afile"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(p("marked"), ".dfs"), 0o755)
	os.WriteFile(filepath.Join(p("marked"), ".dfs", "volume-id"), []byte("0b1e6a52-2f5e-4c1a-9d4e-1d2b3c4d5e6f\n"), 0o644)
	must(t, a, "volume", "create", "used", "replica", "3", h1+":"+p("used1"), h2+":"+p("used2"), h3+":"+p("used3"))

	cases := []struct {
		name string
		args []string
		want string // a fragment of the message
	}{
		{"brick count not a multiple", []string{"v", "replica", "3", h1 + ":" + p("n1"), h2 + ":" + p("n2")}, "multiple"},
		{"four bricks replica 3", []string{"v", "replica", "3", h1 + ":" + p("n1"), h2 + ":" + p("n2"), h3 + ":" + p("n3"), h1 + ":" + p("n4")}, "multiple"},
		{"replica 1", []string{"v", "replica", "1", h1 + ":" + p("n1")}, "replica count"},
		{"redundancy too high", []string{"v", "disperse", "4", "redundancy", "2", h1 + ":" + p("n1"), h2 + ":" + p("n2"), h3 + ":" + p("n3"), h1 + ":" + p("n4")}, "redundancy"},
		{"host not in pool", []string{"v", "replica", "3", h1 + ":" + p("n1"), h2 + ":" + p("n2"), "127.0.0.99:" + p("n3")}, "not in the pool"},
		{"duplicate brick", []string{"v", "replica", "3", h1 + ":" + p("n1"), h2 + ":" + p("n2"), h2 + ":" + p("n2")}, "twice"},
		{"nested bricks", []string{"v", "replica", "3", h1 + ":" + p("n1"), h2 + ":" + p("n2"), h2 + ":" + p("n2/inner")}, "nested"},
		{"relative path", []string{"v", "replica", "3", h1 + ":" + p("n1"), h2 + ":" + p("n2"), h3 + ":relative/dir"}, "HOST:/PATH"},
		{"overlaps a volume", []string{"v", "replica", "3", h1 + ":" + p("used1/sub"), h2 + ":" + p("n2"), h3 + ":" + p("n3")}, "overlaps"},
		{"same server twice in a set", []string{"v", "replica", "3", h1 + ":" + p("n1"), h1 + ":" + p("n2"), h3 + ":" + p("n3")}, "force"},
		{"reserved name", []string{"all", "replica", "3", h1 + ":" + p("n1"), h2 + ":" + p("n2"), h3 + ":" + p("n3")}, "reserved"},
		{"bad name", []string{"a.b", "replica", "3", h1 + ":" + p("n1"), h2 + ":" + p("n2"), h3 + ":" + p("n3")}, "letters, digits"},
		{"long name", []string{strings.Repeat("v", 65), "replica", "3", h1 + ":" + p("n1"), h2 + ":" + p("n2"), h3 + ":" + p("n3")}, "longer than 64"},
		{"existing name", []string{"used", "replica", "3", h1 + ":" + p("n1"), h2 + ":" + p("n2"), h3 + ":" + p("n3")}, "already exists"},
		// Refused by the brick's server, after the others made their
		// directories: those must be removed again.
		{"non-empty directory", []string{"v", "replica", "3", h1 + ":" + p("n1"), h2 + ":" + p("n2"), h3 + ":" + p("full")}, "holds files"},
		{"directory of another volume", []string{"v", "replica", "3", h1 + ":" + p("n1"), h2 + ":" + p("n2"), h3 + ":" + p("marked")}, "brick of volume"},
		{"a file", []string{"v", "replica", "3", h1 + ":" + p("n1"), h2 + ":" + p("n2"), h3 + ":" + p("afile")}, "not a directory"},
		{"under a file", []string{"v", "replica", "3", h1 + ":" + p("n1"), h2 + ":" + p("n2"), h3 + ":" + p("afile/sub")}, "not a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dfs(t, a, append([]string{"volume", "create"}, tc.args...)...)
			if r.code == 0 {
				t.Fatalf("volume create %v succeeded; stdout %q", tc.args, r.stdout)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q does not say %q", r.stderr, tc.want)
			}
			for _, n := range []string{"n1", "n2", "n3", "n4"} {
				if _, err := os.Stat(p(n)); !os.IsNotExist(err) {
					t.Errorf("%s left behind: %v", p(n), err)
				}
			}
			if _, err := os.Stat(filepath.Join(p("full"), ".dfs")); !os.IsNotExist(err) {
				t.Errorf("non-empty directory was marked")
			}
			out := must(t, a, "volume", "list")
			if strings.TrimSpace(out) != "used" {
				t.Errorf("volume list after a failed create: %q", out)
			}
		})
	}
}
