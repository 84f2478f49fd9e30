package store

import (
	"fmt"
	"time"

	"github.com/dfsproject/dfs/proto/dfspb"
)

// TxnStuckAfter is how long a transaction across subvolumes may stay
// unfinished before fsck reports it as stuck: its coordinator's leader
// finishes it at once, or when elected, so an older one means that the
// coordinator cannot reach the other subvolume, or keeps failing.
const TxnStuckAfter = time.Minute

type txnAt struct {
	sub int
	in  *dfspb.TxnIntent
}

// checkTxns reports the unfinished transactions: a problem when older
// than TxnStuckAfter (by the checker's clock), a note otherwise. Finished
// (DONE) records, kept for clients' retries, are not reported. While a
// transaction is unfinished, the entries it touches may show as findings
// of their own (two names, nlink one too high): the transaction's note or
// problem says why.
func (c *Checker) checkTxns(r *FsckResult) {
	now := time.Now()
	for _, t := range c.txns {
		in := t.in
		if in.State == dfspb.TxnState_TXN_STATE_DONE {
			continue
		}
		age := now.Sub(time.Unix(0, in.StartedNs))
		p := &dfspb.FsckProblem{Kind: FsckTxn, Subvolume: uint32(t.sub), Id: in.TxnId,
			Detail: fmt.Sprintf("transaction %x (%v %s) is %v, started %v ago", in.TxnId, in.Op, in.Summary, in.State, age.Round(time.Second))}
		if age >= TxnStuckAfter {
			p.Kind = FsckStuckTxn
			p.Detail += fmt.Sprintf("; its coordinator (subvolume %d's leader) has not finished it", t.sub)
			r.Problems = append(r.Problems, p)
			continue
		}
		r.Notes = append(r.Notes, p)
	}
}
