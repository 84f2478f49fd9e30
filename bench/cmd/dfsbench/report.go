package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one run, as saved in bench/results/<timestamp>.json.
type Result struct {
	Time    time.Time         `json:"time"`
	Host    string            `json:"host"`
	Kernel  string            `json:"kernel"`
	LoadAvg string            `json:"loadavg_at_start"`
	CPUs    int               `json:"cpus"`
	Command string            `json:"command"`
	Config  map[string]string `json:"config"`
	Systems []SystemResult    `json:"systems"`
}

// SystemResult is the workload's figures on one system.
type SystemResult struct {
	Name string `json:"name"`
	// Skipped says why the system was not measured (empty when it was).
	Skipped string        `json:"skipped,omitempty"`
	Phases  []PhaseResult `json:"phases,omitempty"`
	// RSS is the peak resident set size (VmHWM, KiB) of each process.
	RSS map[string]int64 `json:"peak_rss_kib,omitempty"`
}

// PhaseResult is one phase's figure: Value in Unit (higher is better),
// over Seconds, for Count operations (files, entries, MiB, IOs).
type PhaseResult struct {
	Name    string  `json:"name"`
	Unit    string  `json:"unit"`
	Value   float64 `json:"value"`
	Seconds float64 `json:"seconds"`
	Count   float64 `json:"count"`
	Target  float64 `json:"target_vs_gluster,omitempty"`
	Note    string  `json:"note,omitempty"`
	Err     string  `json:"error,omitempty"`
	// CPU is the CPU time (user+system, s) each serving process spent.
	CPU map[string]float64 `json:"cpu_seconds,omitempty"`

	extra *PhaseResult
}

func (r *Result) system(name string) *SystemResult {
	for i := range r.Systems {
		if r.Systems[i].Name == name {
			return &r.Systems[i]
		}
	}
	return nil
}

func (s *SystemResult) phase(name string) *PhaseResult {
	if s == nil {
		return nil
	}
	for i := range s.Phases {
		if s.Phases[i].Name == name {
			return &s.Phases[i]
		}
	}
	return nil
}

// phaseNames lists the phases in the order they ran, over all systems.
func (r *Result) phaseNames() []*PhaseResult {
	var out []*PhaseResult
	seen := map[string]bool{}
	for i := range r.Systems {
		for j := range r.Systems[i].Phases {
			p := &r.Systems[i].Phases[j]
			if !seen[p.Name] {
				seen[p.Name] = true
				out = append(out, p)
			}
		}
	}
	return out
}

func cell(p *PhaseResult) string {
	switch {
	case p == nil:
		return "-"
	case p.Err != "":
		return "FAIL"
	case p.Value >= 100:
		return fmt.Sprintf("%.0f", p.Value)
	default:
		return fmt.Sprintf("%.1f", p.Value)
	}
}

func ratio(a, b *PhaseResult) (float64, string) {
	if a == nil || b == nil || a.Err != "" || b.Err != "" || b.Value == 0 {
		return 0, "-"
	}
	x := a.Value / b.Value
	return x, fmt.Sprintf("%.2fx", x)
}

// printTable prints the figures, the ratios, the phase times, the CPU time
// of the serving processes and their peak RSS.
func printTable(w io.Writer, r *Result) {
	fmt.Fprintf(w, "\ndfsbench %s on %s (%d CPUs, kernel %s, load average at start %s)\n", r.Time.Format(time.RFC3339), r.Host, r.CPUs, r.Kernel, r.LoadAvg)
	fmt.Fprintf(w, "config: seq %s B, %s files x %s B, tree %s (skip %s), fio %s on %s B, meta %s threads x %s rounds\n\n",
		r.Config["seq_bytes"], r.Config["small_files"], r.Config["small_size"], r.Config["tree"], r.Config["skip_tree"],
		r.Config["fio_runtime"], r.Config["fio_size"], r.Config["meta_threads"], r.Config["meta_count"])
	for _, s := range r.Systems {
		if s.Skipped != "" {
			fmt.Fprintf(w, "%s: NOT MEASURED: %s\n", s.Name, s.Skipped)
		}
	}
	local, dfs, gl := r.system("local"), r.system("dfs"), r.system("gluster")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tunit\tlocal\tdfs\tgluster\tdfs/gluster\tdfs/local\ttarget\t")
	for _, p := range r.phaseNames() {
		dp := dfs.phase(p.Name)
		x, xs := ratio(dp, gl.phase(p.Name))
		_, ls := ratio(dp, local.phase(p.Name))
		target := ""
		if p.Target > 0 {
			switch {
			case xs == "-":
				target = fmt.Sprintf(">=%gx ?", p.Target)
			case x >= p.Target:
				target = fmt.Sprintf(">=%gx met", p.Target)
			default:
				target = fmt.Sprintf(">=%gx NOT met", p.Target)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", p.Name, p.Unit,
			cell(local.phase(p.Name)), cell(dp), cell(gl.phase(p.Name)), xs, ls, target)
	}
	tw.Flush()

	fmt.Fprintln(w, "\nseconds per phase")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tlocal\tdfs\tgluster\t")
	for _, p := range r.phaseNames() {
		fmt.Fprintf(tw, "%s", p.Name)
		for _, s := range []*SystemResult{local, dfs, gl} {
			fmt.Fprintf(tw, "\t%s", secs(s.phase(p.Name)))
		}
		fmt.Fprintln(tw, "\t")
	}
	tw.Flush()

	for _, s := range []*SystemResult{dfs, gl} {
		if s == nil || len(s.Phases) == 0 {
			continue
		}
		printCPU(w, s)
	}

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for i, s := range []*SystemResult{dfs, gl} {
		if s == nil || len(s.RSS) == 0 {
			continue
		}
		if i == 0 || dfs == nil || len(dfs.RSS) == 0 {
			fmt.Fprintln(w, "\npeak RSS (VmHWM)")
		}
		for _, name := range sortedKeys(s.RSS) {
			fmt.Fprintf(tw, "%s\t%s\t%.1f MiB\t\n", s.Name, name, float64(s.RSS[name])/1024)
		}
	}
	tw.Flush()
	for _, s := range r.Systems {
		for _, p := range s.Phases {
			if p.Err != "" {
				fmt.Fprintf(w, "%s %s failed: %s\n", s.Name, p.Name, p.Err)
			}
		}
	}
}

func secs(p *PhaseResult) string {
	if p == nil || p.Err != "" {
		return "-"
	}
	return fmt.Sprintf("%.2f", p.Seconds)
}

// printCPU prints the CPU seconds the system's processes spent per phase,
// grouped: client, servers/bricks, others.
func printCPU(w io.Writer, s *SystemResult) {
	fmt.Fprintf(w, "\n%s: CPU seconds of its processes per phase (user+system)\n", s.Name)
	groups := []string{"client", "servers", "other"}
	group := func(proc string) string {
		switch {
		case proc == "client":
			return "client"
		case strings.HasPrefix(proc, "server") || strings.HasPrefix(proc, "brick"):
			return "servers"
		}
		return "other"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\twall\tclient\tservers\tother\t")
	for _, p := range s.Phases {
		sum := map[string]float64{}
		for proc, c := range p.CPU {
			sum[group(proc)] += c
		}
		fmt.Fprintf(tw, "%s\t%s", p.Name, secs(&p))
		for _, g := range groups {
			fmt.Fprintf(tw, "\t%.2f", sum[g])
		}
		fmt.Fprintln(tw, "\t")
	}
	tw.Flush()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// saveResult writes r to DIR/<timestamp>.json via a temporary file.
func saveResult(dir string, r *Result) (string, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, r.Time.Format("20060102T150405Z")+".json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

func loadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// printCompare prints each figure of this run as a ratio to the same
// figure in an earlier run (above 1: faster now).
func printCompare(w io.Writer, now, old *Result, oldPath string) {
	fmt.Fprintf(w, "\ncompared with %s (%s): now/then, above 1 is faster now\n", oldPath, old.Time.Format(time.RFC3339))
	if now.Config["quick"] != old.Config["quick"] || now.Config["seq_bytes"] != old.Config["seq_bytes"] || now.Config["small_files"] != old.Config["small_files"] {
		fmt.Fprintln(w, "note: the two runs used different sizes; compare with care")
	}
	var names []string
	for _, s := range now.Systems {
		names = append(names, s.Name)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "phase\tunit")
	for _, n := range names {
		fmt.Fprintf(tw, "\t%s then\t%s now\t%s now/then", n, n, n)
	}
	fmt.Fprintln(tw, "\t")
	for _, p := range now.phaseNames() {
		fmt.Fprintf(tw, "%s\t%s", p.Name, p.Unit)
		for _, n := range names {
			a, b := now.system(n).phase(p.Name), old.system(n).phase(p.Name)
			_, rs := ratio(a, b)
			fmt.Fprintf(tw, "\t%s\t%s\t%s", cell(b), cell(a), rs)
		}
		fmt.Fprintln(tw, "\t")
	}
	tw.Flush()
}
