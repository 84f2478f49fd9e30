package client_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/dfsproject/dfs/pkg/client"
	"github.com/dfsproject/dfs/pkg/client/clienttest"
)

// TestPageAnswerDoesNotRefreshOpenAttr: a lookup answered from a page
// hands the open file's state attributes read when the page was read; they
// count as that old (overlayOpenAt), so RecentOpenAttr (the GETATTR the
// kernel sends for a file open here) stops answering them one attribute
// timeout after the page was read, and another client's chmod made since
// is seen.
func TestPageAnswerDoesNotRefreshOpenAttr(t *testing.T) {
	e := newEnv(t, clienttest.Options{})
	dir, _, err := e.v.Mkdir(e.ctx, e.v.Root(), "d", 0o755, 0, 0)
	mustOK(t, "mkdir", err)
	kids := map[string]client.Node{}
	for i := range 20 {
		n := fmt.Sprintf("f%04d", i)
		kids[n] = e.writeFile(e.v, dir, n, []byte("data"))
	}
	v := e.open()
	const maxAge = time.Second
	target := kids["f0010"]
	f, err := v.Open(e.ctx, target, os.O_RDONLY)
	mustOK(t, "open", err)
	defer f.Release(e.ctx)

	// A run of lookups reads a page holding f0010's attributes.
	pageAt := time.Now()
	for i := range 6 {
		_, _, _, err := v.LookupAt(e.ctx, dir, fmt.Sprintf("f%04d", i), maxAge)
		mustOK(t, "lookup", err)
	}
	if _, pages := v.LookupBatchStats(); pages == 0 {
		t.Fatal("no page read")
	}
	// Another client changes the file's mode after the page was read.
	_, err = e.v.SetAttr(e.ctx, target, client.SetAttrIn{Mask: client.SetMode, Mode: 0o600})
	mustOK(t, "chmod", err)

	// Late in the page's life, the file is looked up: from the page.
	time.Sleep(time.Until(pageAt.Add(maxAge * 8 / 10)))
	answered0, _ := v.LookupBatchStats()
	_, a, asOf, err := v.LookupAt(e.ctx, dir, "f0010", maxAge)
	mustOK(t, "lookup f0010", err)
	if answered, _ := v.LookupBatchStats(); answered == answered0 {
		t.Fatal("not answered from the page")
	}
	t.Logf("page answer: mode %o as of %v ago", a.Mode&0o7777, time.Since(asOf))

	// Past the page's life plus a bit: attributes recorded then must not be
	// answered as recent any more.
	time.Sleep(time.Until(pageAt.Add(maxAge * 3 / 2)))
	if ra := v.RecentOpenAttr(target, maxAge); ra != nil && ra.Mode&0o7777 != 0o600 {
		t.Fatalf("RecentOpenAttr %v after the page was read answers mode %o: the chmod made %v ago is missed (bound %v)",
			time.Since(pageAt), ra.Mode&0o7777, time.Since(pageAt), maxAge)
	}
}
